"""The `fusion-ros` command line: one module per sub-command, dispatched by fusion_ros.cli.main."""
