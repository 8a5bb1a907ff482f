"""Run and sweep directories: every file bpcli writes, and reads back, lives in this package.

    files        creating directories safely, atomic writes, the version recorded
    run          the files of a single run (config, metrics, summary, data, curves)
    sweep        the files of a sweep
    checkpoint   checkpoint.pt (imports torch; the others do not)
"""
