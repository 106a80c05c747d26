"""``python -m stability_connector.workflows``: rewrite schemas/workflow.schema.json."""

from stability_connector.workflows.spec import write_workflow_schema

print(f"wrote {write_workflow_schema()}")
