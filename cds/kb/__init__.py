"""The knowledge base: file schemas, loading, the logic model, terminology tables."""
