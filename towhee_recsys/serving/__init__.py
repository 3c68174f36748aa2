"""HTTP API of towhee_recsys on FastAPI, served by uvicorn (`towhee-recsys serve`).

Importing this package imports FastAPI, so `import towhee_recsys` does not import it.
"""

from towhee_recsys.serving.app import create_app
from towhee_recsys.serving.runner import check_address_free, run_server

__all__ = ["check_address_free", "create_app", "run_server"]
