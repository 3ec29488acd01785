"""Tasks and their labels: label files (`labels`), a label folder's tasks (`tasklist.dataset_tasks`), the
evaluator's label folder (`labels export`), custom tasks from a user's data (`task import`, `task labels`,
`task pack`), and label repair (`labels fix`). Nothing here imports the converters or the loader."""
