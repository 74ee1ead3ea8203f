"""Pure parsing: providers per format, the document model, rendering, the sandboxed child."""
