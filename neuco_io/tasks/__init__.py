"""Tasks and their labels: label files, custom tasks from a user's data (`task import`, `task labels`,
`task pack`), and label repair (`labels fix`)."""
