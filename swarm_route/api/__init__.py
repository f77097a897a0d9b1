"""The REST surface: request and response models, and the FastAPI ingress that is the only code knowing HTTP."""
