"""A recommender-style recipe: named feature inputs, a tower per task, binary + regression +
multiclass tasks, Adam, and synthetic click data with planted task relations.

    python -m experiments.tag_pipeline --recipe=experiments/recipes/recommender.py --run_dir=runs/rec

Data (seeded, `EXAMPLES` rows, 80/10/10 splits): a user has 6 features, an item 6, the context
3, all standard normal. Two hidden factors drive the labels:

    interest = (user[:3] · item[:3]) / √3 + noise             (how much the user wants the item)
    price    = (user[3:] · a + item[3:] · b) / √6 + noise      (price sensitivity, a and b fixed)

    click        binary       1[interest > 0]
    like         binary       1[interest + 0.5·context[0] > 0.3], observed only after a click (-1 otherwise)
    watch_time   regression   2·interest + 0.3·noise
    price_tier   multiclass   price cut at −0.5, 0.5 into 3 tiers
    coupon       binary       1[price + 0.2·noise > 0]

so click, like and watch_time read one factor (a product of user and item features, which a
shared layer learns once for all three) and price_tier and coupon another: TAG should find
{click, like, watch_time} and {price_tier, coupon}.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tag_tf.tasks import Task

TASKS = [Task("click"), Task("like"), Task("watch_time", "regression"),
         Task("price_tier", "multiclass", num_classes=3), Task("coupon")]
EXAMPLES = 20000
SEED = 0
FEATURES = {"user": 6, "item": 6, "context": 3}


def make_data(examples: int = EXAMPLES, seed: int = SEED) -> tuple[dict, dict]:
    """(inputs {name: float32 [N, d]}, labels {task: [N]}) as the module docstring says."""
    rng = np.random.default_rng(seed)
    inputs = {name: rng.standard_normal((examples, d)).astype("float32") for name, d in FEATURES.items()}
    user, item, context = inputs["user"], inputs["item"], inputs["context"]
    noise = rng.standard_normal((5, examples))
    interest = np.sum(user[:, :3] * item[:, :3], axis=1) / np.sqrt(3) + 0.2 * noise[0]
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    price = (user[:, 3:] @ a + item[:, 3:] @ b) / np.sqrt(6) + 0.2 * noise[1]
    click = (interest > 0).astype("int32")
    like = np.where(click == 1, (interest + 0.5 * context[:, 0] > 0.3).astype("int32"), -1)
    labels = {"click": click, "like": like.astype("int32"),
              "watch_time": (2 * interest + 0.3 * noise[2]).astype("float32"),
              "price_tier": np.digitize(price, [-0.5, 0.5]).astype("int32"),
              "coupon": (price + 0.2 * noise[3] > 0).astype("int32")}
    return inputs, labels


def load_data() -> dict:
    inputs, labels = make_data()
    cuts = [0, int(0.8 * EXAMPLES), int(0.9 * EXAMPLES), EXAMPLES]
    return {split: tf.data.Dataset.from_tensor_slices(({k: v[lo:hi] for k, v in inputs.items()},
                                                       {k: v[lo:hi] for k, v in labels.items()}))
            for split, lo, hi in zip(("train", "validation", "test"), cuts[:-1], cuts[1:])}


def build_model(tasks) -> keras.Model:
    """Embeddings of each input, a shared layer over them, then a two-layer tower per task."""
    inputs = {name: keras.Input((d,), name=name) for name, d in FEATURES.items()}
    embedded = [layers.Dense(16, activation="relu", name=f"{name}_embedding")(x) for name, x in inputs.items()]
    shared = layers.Dense(32, activation="relu", name="shared")(layers.Concatenate()(embedded))
    outputs = {t.name: layers.Dense(t.output_units, name=f"{t.name}_head")(
        layers.Dense(16, activation="relu", name=f"{t.name}_tower")(shared)) for t in tasks}
    return keras.Model(inputs, outputs, name="recommender")


def optimizer() -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(1e-3)
