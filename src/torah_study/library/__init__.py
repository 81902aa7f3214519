"""The texts themselves: refs, Hebrew normalisation, export reading, the catalog."""
