"""Report: what a run produced, for people.

    summary.py         format_summary: the text a pipeline run ends with
    html.py            write_report: report/index.html of a run directory; the selection in TensorBoard
    pictures.py        affinity heatmaps, groupings, saliency maps
    dense_pictures.py  dense predictions beside their ground truth

Import the module you need (`from tag_tf.report.html import write_report`): the package imports
nothing itself, so that training callbacks can draw pictures without loading the run stages.
"""
