"""Tasks and their data: what a network is trained and measured on, declared in a config's `task:` section.

`make_task(section, source=config_file, input_channels=space.input_channels)` validates the section (one
pydantic model per type, unknown keys rejected, one-line errors naming the file and field) and returns a
`Task`. Built-in types (settings and defaults in `_registry.py`):

- `flow`: optical flow, synthetic FlyingChairs-like data (generated offline, cached) or the user's files
  (Middlebury .flo, KITTI 16-bit PNG) listed as `frame1 frame2 flow` lines; metrics epe (primary), fl_all.
- `digits`, `digits-hard`: scikit-learn's digits, plain or at random scale and place among clutter.
- `npz`, `folder`: a user's arrays or image folder. Metric top1 (primary).
- `plugin`: a user's `module:function` returning a Task.

Examples::

    task: {type: flow}                                   # 2000 / 200 synthetic pairs at the training size
    task: {type: flow, train_samples: 5000, data_seed: 1, loss_weights: [0.25, 0.5, 1.0]}
    task: {type: flow, train_data: chairs_train.txt, val_data: chairs_val.txt, fit: resize}
    task: {type: digits-hard, train_samples: 4000, val_samples: 1000, clutter: 3}
    task: {type: npz, path: data/shapes.npz, val_fraction: 0.1}
    task: {type: folder, path: data/train, val_path: data/val}
    task: {type: plugin, entry: "my_tasks:make", classes: 4}

Generated data are cached in `$EDGENAS_DATA_CACHE` (default `~/.cache/edgenas/data`).
"""

from edgenas.train.tasks._cache import cache_dir
from edgenas.train.tasks._registry import TaskContext, make_task, register_task, task_types
from edgenas.train.tasks.base import Task, TaskData, better

__all__ = ["Task", "TaskContext", "TaskData", "better", "cache_dir", "make_task", "register_task", "task_types"]
