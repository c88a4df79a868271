"""End-to-end tests: the course notebooks in JupyterLab, driven in Chromium by Playwright."""
