"""Logic behind ``tools/analysis_tools``: mmseg's analysis tools made to run on SEG101 configs.

Each module holds one tool's work as plain functions; the scripts under
``tools/analysis_tools`` only parse the command line (mmseg's argument names) and call them:

- :mod:`.benchmark`: FPS and latency of a config's model (``benchmark.py``);
- :mod:`.complexity`: FLOPs and parameters (``get_flops.py``);
- :mod:`.browse`: the training pipeline's output drawn over each image (``browse_dataset.py``);
- :mod:`.confusion`: confusion matrix of saved predictions (``confusion_matrix.py``);
- :mod:`.logs`: curves and summaries of mmengine's JSON logs (``analyze_logs.py``).
"""
