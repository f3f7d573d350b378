"""The decision core: numbers, the decision, feature-code outcomes. Pure: no I/O, and imports
nothing else of ours."""
