"""The shared kernel: canonical records, the error tree, configuration models and small helpers.

Every stage imports from here; nothing here imports a stage.
"""
