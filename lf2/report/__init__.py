"""Results: Table II / Table I (``tables``), the paper's published numbers (``paper``) and the
paper-style figures (``figures``, ``curves``, ``tsne``, ``gradcam``). Submodules import their
heavy dependencies lazily; import the one you need."""
