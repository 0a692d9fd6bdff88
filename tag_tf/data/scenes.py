"""Synthetic scenes with planted task relations: rendered objects with exact depth, normals,
segmentation and edges, plus two tasks from factors independent of the geometry.

Generative process (every draw from one `numpy.random.default_rng(seed)`; the geometry does not
depend on the image size, so any size renders the same scenes):

1. Camera. A pinhole at the origin looking along +z (x right, y down, camera coordinates), focal
   length `image_size` pixels (a 53° field of view), principal point at the image centre; the
   ray of pixel (row v, column u) is d = ((u − c) / f, (v − c) / f, 1), c = (S − 1) / 2, so a
   point t·d has depth z = t.
2. Scene. A ground plane y = `CAMERA_HEIGHT` (1 unit below the camera), a back wall z = `WALL`
   (10 units away), and 1 to `max_objects` objects resting on the ground, each a sphere (radius
   0.3–0.7) or an axis-aligned box (half extents 0.25–0.6), centred at depth z ∈ [3, 7] and
   across 70% of the view's width at that depth (objects may overlap; the nearest surface wins).
3. Geometry labels, exact per pixel from the ray intersections:
   - `depth`: z of the nearest surface (float32 [S, S]);
   - `normals`: its outward unit normal in camera coordinates (float32 [S, S, 3]): ground
     (0, −1, 0), wall (0, 0, −1), sphere (P − centre) / radius, box the normal of the face hit;
   - `segmentation`: its class (int32 [S, S]): 0 wall, 1 ground, 2 sphere, 3 box;
   - `edges`: 1 where the surface (wall, ground or object instance) differs from that of the
     pixel to the right or below, else 0 (int32 [S, S]): occlusion and class boundaries.
4. Independent factors, drawn independently of the geometry and of each other:
   - `colour` (multiclass, 4): the objects' hue (red, green, blue or yellow, each channel jittered
     by ±0.1);
   - `texture` (multiclass, 3): stripes modulating every surface's albedo by ±25% in screen
     space: none, horizontal or vertical (8 periods across the image, random phase).
5. Image: albedo (wall 0.6 grey, ground 0.45 grey-brown, objects their colour) × texture ×
   (0.35 + 0.65 · max(0, n · L)) for a fixed light direction L, plus Gaussian noise
   (`pixel_noise`), clipped to [0, 1] (float32 [S, S, 3]).
6. Splits: the first 80% of the scenes "train", the next 10% "validation", the last 10% "test".

The planted relation: the four geometric tasks are read from the same surfaces (related); colour
and texture are each independent of the geometry and of each other (`groups`).

>>> data = scenes(num_examples=10, image_size=16, seed=0)
>>> [t.name for t in data.tasks], data.groups[1:]
(['segmentation', 'depth', 'normals', 'edges', 'colour', 'texture'], [['colour'], ['texture']])
>>> image, labels = next(iter(data.splits["train"]))
>>> tuple(image.shape), tuple(labels["normals"].shape), labels["colour"].dtype.name
((16, 16, 3), (16, 16, 3), 'int32')
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tag_tf.data.synthetic import SPLIT_FRACTIONS
from tag_tf.tasks import Task

CAMERA_HEIGHT = 1.0
WALL, GROUND, SPHERE, BOX = 0, 1, 2, 3  # segmentation classes
WALL_DEPTH = 10.0
CLASS_NAMES = ("wall", "ground", "sphere", "box")
HUES = np.array([[0.85, 0.2, 0.2], [0.2, 0.75, 0.25], [0.2, 0.35, 0.9], [0.9, 0.8, 0.2]])
TEXTURES = ("none", "horizontal", "vertical")
LIGHT = np.array([-0.4, -1.0, -0.6]) / np.linalg.norm([-0.4, -1.0, -0.6])
GEOMETRIC_TASKS = ("segmentation", "depth", "normals", "edges")
TASK_NAMES = GEOMETRIC_TASKS + ("colour", "texture")


@dataclasses.dataclass(frozen=True)
class SceneGeometry:
    """The objects of N scenes, M slots each: `kinds` int [N, M] (SPHERE, BOX, or -1 for an empty
    slot), `centres` [N, M, 3] and `sizes` [N, M, 3] (a sphere's radius three times, a box's half
    extents), in camera coordinates."""

    kinds: np.ndarray
    centres: np.ndarray
    sizes: np.ndarray

    def take(self, part: slice) -> "SceneGeometry":
        return SceneGeometry(self.kinds[part], self.centres[part], self.sizes[part])


@dataclasses.dataclass(frozen=True)
class SceneData:
    """Synthetic scenes (`scenes`).

    Attributes:
      splits: {"train" | "validation" | "test": unbatched tf.data.Dataset of (image, {task: label})}.
      tasks: the four geometric tasks, then colour and texture.
      groups: the planted relation: [the geometric tasks], ["colour"], ["texture"].
      input_name: "image".
      geometry: {split: the `SceneGeometry` its images were rendered from}.
    """

    splits: dict[str, tf.data.Dataset]
    tasks: list[Task]
    groups: list[list[str]]
    input_name: str
    geometry: dict[str, SceneGeometry]


def scenes(num_examples: int = 1000, image_size: int = 32, seed: int = 0, *, max_objects: int = 3,
           pixel_noise: float = 0.02) -> SceneData:
    """Rendered scenes with planted task relations; see the module docstring for the process."""
    for name, value in (("num_examples", num_examples), ("image_size", image_size), ("max_objects", max_objects)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    rng = np.random.default_rng(seed)
    geometry = draw_geometry(rng, num_examples, max_objects)
    colours = rng.integers(0, len(HUES), num_examples)
    textures = rng.integers(0, len(TEXTURES), num_examples)
    labels = render(geometry, image_size)
    albedo = _albedo(rng, labels["surface"], colours, textures, image_size)
    shading = 0.35 + 0.65 * np.maximum(labels["normals"] @ LIGHT, 0.0)
    images = albedo * shading[..., None] + pixel_noise * rng.standard_normal(albedo.shape)
    images = np.clip(images, 0.0, 1.0).astype(np.float32)
    targets = {name: labels[name] for name in GEOMETRIC_TASKS}
    targets.update(colour=colours.astype(np.int32), texture=textures.astype(np.int32))
    tasks = [Task("segmentation", kind="segmentation", num_classes=len(CLASS_NAMES)), Task("depth", kind="depth"),
             Task("normals", kind="normals"), Task("edges", kind="edges"),
             Task("colour", kind="multiclass", num_classes=len(HUES)),
             Task("texture", kind="multiclass", num_classes=len(TEXTURES))]
    bounds = np.cumsum([0] + [round(f * num_examples) for f in SPLIT_FRACTIONS.values()])
    bounds[-1] = num_examples
    splits, geometries = {}, {}
    for i, split in enumerate(SPLIT_FRACTIONS):
        part = slice(bounds[i], bounds[i + 1])
        splits[split] = tf.data.Dataset.from_tensor_slices((images[part], {k: v[part] for k, v in targets.items()}))
        geometries[split] = geometry.take(part)
    return SceneData(splits, tasks, [list(GEOMETRIC_TASKS), ["colour"], ["texture"]], "image", geometries)


def draw_geometry(rng, num_examples: int, max_objects: int = 3) -> SceneGeometry:
    """Step 2 of the module docstring: 1..max_objects spheres or boxes per scene, on the ground.

    >>> g = draw_geometry(np.random.default_rng(0), 2, max_objects=2)
    >>> g.kinds.shape, bool(np.all(g.centres[..., 1] + g.sizes[..., 1] <= CAMERA_HEIGHT + 1e-9))
    ((2, 2), True)
    """
    shape = (num_examples, max_objects)
    count = rng.integers(1, max_objects + 1, num_examples)
    kinds = np.where(np.arange(max_objects)[None, :] < count[:, None], rng.choice([SPHERE, BOX], shape), -1)
    radius = rng.uniform(0.3, 0.7, shape)
    half = rng.uniform(0.25, 0.6, shape + (3,))
    sizes = np.where((kinds == SPHERE)[..., None], radius[..., None], half)
    depth = rng.uniform(3.0, 7.0, shape)
    x = rng.uniform(-0.35, 0.35, shape) * depth  # 70% of the half-width z/2 at that depth
    centres = np.stack([x, CAMERA_HEIGHT - sizes[..., 1], depth], axis=-1)
    return SceneGeometry(kinds, centres, sizes)


def camera_rays(image_size: int) -> np.ndarray:
    """The ray d of every pixel `[S, S, 3]`, d_z = 1 (a point t·d has depth t); see step 1.

    >>> camera_rays(3)[1, 2].tolist()         # row 1, column 2: right of the centre
    [0.3333333333333333, 0.0, 1.0]
    """
    centre = (image_size - 1) / 2
    v, u = np.meshgrid(np.arange(image_size), np.arange(image_size), indexing="ij")
    return np.stack([(u - centre) / image_size, (v - centre) / image_size, np.ones(u.shape)], axis=-1)


def render(geometry: SceneGeometry, image_size: int) -> dict[str, np.ndarray]:
    """Step 3: exact `depth` [N, S, S], `normals` [N, S, S, 3], `segmentation` and `edges`
    [N, S, S], and `surface` [N, S, S] (0 wall, 1 ground, 2 + m object slot m)."""
    rays = camera_rays(image_size)[None]  # [1, S, S, 3]
    n = len(geometry.kinds)
    with np.errstate(divide="ignore", invalid="ignore"):
        ground = np.where(rays[..., 1] > 0, CAMERA_HEIGHT / rays[..., 1], np.inf)
    depth = np.broadcast_to(np.minimum(ground, WALL_DEPTH), (n, image_size, image_size)).copy()
    surface = np.where(ground < WALL_DEPTH, GROUND, WALL) * np.ones_like(depth, dtype=np.int64)
    normals = np.where((surface == GROUND)[..., None], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0])
    classes = surface.copy()
    for m in range(geometry.kinds.shape[1]):
        kind, centre, size = geometry.kinds[:, m], geometry.centres[:, m], geometry.sizes[:, m]
        t_sphere, n_sphere = _hit_sphere(rays, centre, size[:, 0])
        t_box, n_box = _hit_box(rays, centre, size)
        is_sphere = (kind == SPHERE)[:, None, None]
        t = np.where(is_sphere, t_sphere, np.where((kind == BOX)[:, None, None], t_box, np.inf))
        nearer = t < depth
        depth = np.where(nearer, t, depth)
        normals = np.where(nearer[..., None], np.where(is_sphere[..., None], n_sphere, n_box), normals)
        surface = np.where(nearer, 2 + m, surface)
        classes = np.where(nearer, np.where(is_sphere, SPHERE, BOX), classes)
    edges = np.zeros_like(surface)
    edges[:, :, :-1] |= surface[:, :, :-1] != surface[:, :, 1:]
    edges[:, :-1, :] |= surface[:, :-1, :] != surface[:, 1:, :]
    return {"depth": depth.astype(np.float32), "normals": normals.astype(np.float32),
            "segmentation": classes.astype(np.int32), "edges": edges.astype(np.int32), "surface": surface}


def _hit_sphere(rays, centre, radius):
    """Nearest t > 0 with |t·d − centre| = radius (inf on a miss) [N, S, S], and the normal there."""
    c = centre[:, None, None, :]
    a = np.sum(rays * rays, axis=-1)
    b = np.sum(rays * c, axis=-1)
    disc = b * b - a * (np.sum(c * c, axis=-1) - radius[:, None, None] ** 2)
    with np.errstate(invalid="ignore"):
        t = (b - np.sqrt(disc)) / a
    t = np.where((disc >= 0) & (t > 0), t, np.inf)
    point = np.where(np.isfinite(t)[..., None], np.where(np.isfinite(t), t, 0.0)[..., None] * rays, c)
    return t, (point - c) / radius[:, None, None, None]


def _hit_box(rays, centre, half):
    """Nearest t > 0 where the ray enters the box (slab method; inf on a miss), and the outward
    normal of the face it enters through."""
    c, h = centre[:, None, None, :], half[:, None, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (c - h) / rays, (c + h) / rays
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)  # parallel to a slab: ±inf, inside it or not
    enter, leave = near.max(axis=-1), far.min(axis=-1)
    t = np.where((enter <= leave) & (enter > 0), enter, np.inf)
    axis = near.argmax(axis=-1)
    normal = -np.sign(rays) * (np.arange(3) == axis[..., None])
    return t, normal


def _albedo(rng, surface, colours, textures, size):
    """Step 5's albedo [N, S, S, 3]: wall, ground and object colours times the texture stripes."""
    n = len(surface)
    hue = HUES[colours][:, None, None, :] + rng.uniform(-0.1, 0.1, (n, 1, 1, 3))
    albedo = np.where((surface == 0)[..., None], 0.6, np.where((surface == 1)[..., None], [0.5, 0.45, 0.35], hue))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    coordinate = np.where((textures == 1)[:, None, None], rows, cols) / size
    stripes = np.where((textures == 0)[:, None, None], 1.0,
                       1.0 + 0.25 * np.sign(np.sin(2 * np.pi * 8 * coordinate + phase)))
    return albedo * stripes[..., None]
