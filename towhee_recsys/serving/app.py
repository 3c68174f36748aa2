"""The FastAPI application: recommendations, ratings, users, movies and health.

The endpoints are plain functions, so FastAPI runs them in its thread pool, and
several requests call the shared `RecommendPipeline` at the same time. The pipeline is
safe for that: its stores accept calls from several threads and the model runs its
Paddle calls under a lock.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from towhee_recsys._version import __version__
from towhee_recsys.errors import RecsysError
from towhee_recsys.serving.errors import (
    InvalidInputError,
    NotFoundError,
    RequestLogMiddleware,
    install_error_handlers,
)
from towhee_recsys.serving.schemas import (
    EXCLUDE_RATED_DESCRIPTION,
    GENRES_DESCRIPTION,
    MAX_TOP_K,
    TOP_K_DESCRIPTION,
    YEAR_MAX_DESCRIPTION,
    YEAR_MIN_DESCRIPTION,
    BatchRequest,
    BatchResponse,
    Demographics,
    ErrorOut,
    GenresOut,
    HealthOut,
    MovieIn,
    MovieOut,
    NewUserRequest,
    RatingsRecorded,
    RatingsRequest,
    UserOut,
    UserRecommendations,
)
from towhee_recsys.settings import Settings

logger = logging.getLogger("towhee_recsys.serving")

_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in (
        (422, "Invalid input: the body names each invalid field and the reason."),
        (503, "A store or the model is unavailable."),
        (500, "Internal error. The server log has the details."),
    )
}
_NOT_FOUND = {404: {"model": ErrorOut, "description": "Unknown user or movie."}}


class Service:
    """The open pipeline and the facts about its catalog that every request needs."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        resources = pipeline.resources
        self.id_type: str = resources.model.vocabularies.id_type
        self.model_fingerprint: str | None = resources.model.fingerprint
        self.vector_backend = _backend_name(resources.vector_store)
        self.metadata_backend = _backend_name(resources.metadata_store)

    def catalog_id(self, value: Any, field: str, location: str) -> int | str:
        """Return `value` as an id of this catalog's id type, or raise InvalidInputError naming `field`."""
        if self.id_type != "int":
            return str(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
            return int(value)
        raise InvalidInputError([(field, location, f"expected an integer id, because this catalog has integer "
                                                   f"ids; got {value!r}")])


def _backend_name(store: Any) -> str:
    # describe() also counts rows, so it fails when the store is down. The class name
    # then names the backend.
    try:
        return str(store.describe()["backend"])
    except Exception:  # noqa: BLE001 - the name is informational
        logger.warning("Could not describe %s at startup", type(store).__name__, exc_info=True)
        return type(store).__name__


def create_app(
    settings: Settings | None = None,
    *,
    pipeline: Any = None,
    log_requests: bool = True,
) -> FastAPI:
    """Build the API application.

    Args:
        settings: locations of the model and stores; None reads the environment and the
            default data folder. Ignored when `pipeline` is given.
        pipeline: an open `RecommendPipeline` to serve. The application takes it over
            and closes it when it shuts down. None opens one from `settings` at startup.
        log_requests: log one line per request at info level.

    The pipeline opens in the application's lifespan startup and closes at shutdown,
    which releases the Milvus Lite file for other processes.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = pipeline if pipeline is not None else _open_pipeline(settings)
        try:
            _reinstall_signal_handlers()
            app.state.service = Service(opened)
            logger.info("Serving model %s: vector store %s, metadata store %s", app.state.service.model_fingerprint,
                        app.state.service.vector_backend, app.state.service.metadata_backend)
            yield
        finally:
            app.state.service = None
            opened.close()
            logger.info("Closed the recommend pipeline and its stores")

    app = FastAPI(
        title="towhee_recsys",
        version=__version__,
        description="Personalized movie recommendations: a PaddlePaddle two-tower model, Milvus and Towhee.",
        lifespan=lifespan,
        responses=_ERRORS,
    )
    app.state.service = None
    app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(RequestLogMiddleware, log_requests=log_requests)
    return app


def _open_pipeline(settings: Settings | None) -> Any:
    from towhee_recsys.pipelines import recommend_pipeline

    return recommend_pipeline(settings)


def _reinstall_signal_handlers() -> None:
    """Give SIGINT and SIGTERM back to the Python handlers that the ASGI server installed.

    Importing paddle (seen with paddlepaddle 3.x on Linux) installs a C-level SIGTERM
    handler that prints a fatal error report and kills the process. When the model loads
    after the server installed its handlers, as under `uvicorn --factory`, that handler
    replaces the server's, and SIGTERM skips the graceful shutdown and leaves the stores open.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread can set handlers, and servers set theirs there
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is not None:
            signal.signal(signum, handler)


def get_service(request: Request) -> Service:
    """Return the running service, or raise a 503 error while the application starts or stops."""
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise HTTPException(503, "The service is not ready: it is starting or shutting down.")
    return service


ServiceDependency = Annotated[Service, Depends(get_service)]
router = APIRouter()


# ----- service -----


@router.get("/health", tags=["service"], response_model=HealthOut,
            responses={503: {"model": HealthOut, "description": "A store failed."}})
def health(service: ServiceDependency) -> Any:
    """Report the model and store backends, and count the movies in both stores."""
    resources = service.pipeline.resources
    counts: dict[str, int | None] = {"movie_count": None, "metadata_movie_count": None}
    failures = []
    for key, name, count in (
        ("movie_count", f"vector store ({service.vector_backend})", resources.vector_store.count),
        ("metadata_movie_count", f"metadata store ({service.metadata_backend})", resources.metadata_store.count_movies),
    ):
        try:
            counts[key] = count()
        except RecsysError as error:
            logger.error("Health check: the %s failed: %s", name, error)
            failures.append(f"The {name} failed: {error}")
    if not failures and counts["movie_count"] != counts["metadata_movie_count"]:
        # A metadata store that lost its data (a restarted Redis without persistence, say)
        # makes every recommendation fail, so the service is not healthy.
        failures.append(
            f"The stores are out of step: the vector store holds {counts['movie_count']} movies and the "
            f"metadata store {counts['metadata_movie_count']}. Run `towhee-recsys check --repair` or ingest again."
        )
        logger.error("Health check: %s", failures[-1])

    body = HealthOut(
        status="unavailable" if failures else "ok",
        version=__version__,
        model_fingerprint=service.model_fingerprint,
        id_type=service.id_type,
        vector_store=service.vector_backend,
        metadata_store=service.metadata_backend,
        message=" ".join(failures) or None,
        **counts,
    )
    if failures:
        return JSONResponse(body.model_dump(), status_code=503)
    return body


# ----- recommendations -----


@router.get("/users/{user_id}/recommendations", tags=["recommendations"], response_model=UserRecommendations,
            responses=_NOT_FOUND)
def recommend_for_user(
    service: ServiceDependency,
    user_id: str,
    top_k: Annotated[int, Query(ge=1, le=MAX_TOP_K, description=TOP_K_DESCRIPTION)] = 10,
    exclude_rated: Annotated[bool, Query(description=EXCLUDE_RATED_DESCRIPTION)] = True,
    genres: Annotated[list[str] | None, Query(description=GENRES_DESCRIPTION + " Repeat the parameter or "
                                              "separate names by commas.")] = None,
    year_min: Annotated[int | None, Query(description=YEAR_MIN_DESCRIPTION)] = None,
    year_max: Annotated[int | None, Query(description=YEAR_MAX_DESCRIPTION)] = None,
    explain: Annotated[bool, Query(description="Add the rated movies that most support each movie.")] = False,
) -> Any:
    """Recommend movies for a user in the catalog, best first."""
    catalog_id = service.catalog_id(user_id, "user_id", "path")
    recommendations = service.pipeline(
        catalog_id,
        top_k=top_k,
        exclude_rated=exclude_rated,
        genres=_split_genres(genres),
        year_min=year_min,
        year_max=year_max,
        explain=explain,
    )
    return _user_recommendations(catalog_id, recommendations)


@router.post("/recommendations", tags=["recommendations"], response_model=UserRecommendations)
def recommend_for_new_user(service: ServiceDependency, body: NewUserRequest) -> Any:
    """Recommend movies for a new user known only by gender, age group and occupation."""
    if body.gender is None and body.age is None and body.occupation is None:
        raise InvalidInputError([("body", "body", "at least one of gender, age and occupation is required")])
    recommendations = service.pipeline(
        None,
        gender=body.gender,
        age=body.age,
        occupation=body.occupation,
        top_k=body.top_k,
        genres=body.genres,
        year_min=body.year_min,
        year_max=body.year_max,
    )
    return _user_recommendations(None, recommendations)


@router.post("/recommendations/batch", tags=["recommendations"], response_model=BatchResponse, responses=_NOT_FOUND)
def recommend_batch(service: ServiceDependency, body: BatchRequest) -> Any:
    """Recommend movies for many users of the catalog in one call, in request order."""
    user_ids = [service.catalog_id(value, f"user_ids[{index}]", "body") for index, value in enumerate(body.user_ids)]
    batches = service.pipeline.recommend_batch(
        user_ids,
        top_k=body.top_k,
        exclude_rated=body.exclude_rated,
        genres=body.genres,
        year_min=body.year_min,
        year_max=body.year_max,
        skip_unknown=body.skip_unknown,
    )
    results = [_user_recommendations(user_id, items) for user_id, items in zip(user_ids, batches, strict=True)]
    return {"results": results}


def _split_genres(values: Iterable[str] | None) -> list[str] | None:
    if values is None:
        return None
    genres = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return genres or None


def _user_recommendations(user_id: Any, recommendations: Iterable[Any]) -> dict[str, Any]:
    return {"user_id": user_id, "recommendations": [item.to_dict() for item in recommendations]}


# ----- users -----


@router.put("/users/{user_id}", tags=["users"], response_model=UserOut)
def register_user(service: ServiceDependency, user_id: str, demographics: Demographics) -> Any:
    """Store a user's demographics, creating the user or replacing the stored values."""
    catalog_id = service.catalog_id(user_id, "user_id", "path")
    user = service.pipeline.register_user(catalog_id, demographics.gender, demographics.age, demographics.occupation)
    return {"user_id": user.user_id, "gender": user.gender, "age": user.age, "occupation": user.occupation}


@router.post("/users/{user_id}/ratings", tags=["users"], response_model=RatingsRecorded, responses=_NOT_FOUND)
def record_ratings(service: ServiceDependency, user_id: str, body: RatingsRequest) -> Any:
    """Record new ratings of a user.

    The rated movies are excluded from the user's next recommendations at once, and
    the user's vector moves towards the movies the user rated highly.
    """
    catalog_id = service.catalog_id(user_id, "user_id", "path")
    ratings: dict[Any, float] = {}
    for index, item in enumerate(body.ratings):
        field = f"ratings[{index}].movie_id"
        movie_id = service.catalog_id(item.movie_id, field, "body")
        if movie_id in ratings:
            raise InvalidInputError([(field, "body", f"movie {movie_id!r} is rated twice in this request")])
        ratings[movie_id] = item.rating
    recorded = service.pipeline.record_ratings(catalog_id, ratings)
    return {"user_id": catalog_id, "ratings_recorded": recorded}


# ----- movies -----


@router.put("/movies/{movie_id}", tags=["movies"], response_model=MovieOut)
def put_movie(service: ServiceDependency, movie_id: str, movie: MovieIn) -> Any:
    """Add a movie or replace it. The movie tower encodes it, and the next search can return it."""
    catalog_id = service.catalog_id(movie_id, "movie_id", "path")
    stored = service.pipeline.put_movie(catalog_id, movie.title, movie.genres, movie.year)
    return _movie_out(stored)


@router.get("/movies/{movie_id}", tags=["movies"], response_model=MovieOut, responses=_NOT_FOUND)
def get_movie(service: ServiceDependency, movie_id: str) -> Any:
    """Return a movie of the catalog."""
    catalog_id = service.catalog_id(movie_id, "movie_id", "path")
    movie = service.pipeline.get_movie(catalog_id)
    if movie is None:
        raise NotFoundError(f"Movie {catalog_id!r} is not in the catalog.")
    return _movie_out(movie)


@router.get("/genres", tags=["movies"], response_model=GenresOut)
def list_genres(service: ServiceDependency) -> Any:
    """List the genre names that filters and movies accept: those the model was trained with."""
    return {"genres": service.pipeline.genres}


def _movie_out(movie: Any) -> dict[str, Any]:
    return {"movie_id": movie.movie_id, "title": movie.title, "genres": list(movie.genres), "year": movie.year}
