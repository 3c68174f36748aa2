"""Draw docs/images/architecture.png, the data flow of towhee_recsys.

Run it with any Python that has matplotlib, from any folder:

    python docs/images/make_architecture.py

The picture has three lanes (training, ingest, recommendation) and the two stores
between the last two. Green boxes load the model folder, boxes with a purple edge
read or write a store, and grey boxes are input or output data.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen before pyplot is imported
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUTPUT = Path(__file__).with_name("architecture.png")

WIDTH, HEIGHT = 19.0, 11.0
BOX_HEIGHT = 1.25
LANE_MARGIN = 0.45

EDGE = "#333333"
STORE_EDGE = "#6a3d9a"
MODEL_TEXT = "#2e7d4f"
LANE_FACE = "#fafafa"
# Face and edge colour of each kind of box.
STYLES = {
    "data": ("#f2f2f2", EDGE),
    "step": ("#ffffff", EDGE),
    "model": ("#d8efe0", EDGE),
    "store access": ("#ffffff", STORE_EDGE),
    "store": ("#e6dcf3", STORE_EDGE),
}


def draw_box(ax, x, y, width, title, detail, kind, height=BOX_HEIGHT):
    """Draw a rounded box centred on (x, y) and return its position and size."""
    face, edge = STYLES[kind]
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0.02,rounding_size=0.12",
            facecolor=face,
            edgecolor=edge,
            linewidth=2.0 if edge == STORE_EDGE else 1.2,
        )
    )
    ax.text(x, y + height / 2 - 0.28, title, ha="center", va="center", fontsize=11.5, weight="bold")
    ax.text(x, y - 0.12, detail, ha="center", va="center", fontsize=9.2, linespacing=1.25)
    return {"x": x, "y": y, "w": width, "h": height}


# Points on the edges of a box where arrows start and end; `shift` moves a point along the edge.
def right_anchor(box):
    return (box["x"] + box["w"] / 2, box["y"])


def left_anchor(box):
    return (box["x"] - box["w"] / 2, box["y"])


def top_anchor(box, shift=0.0):
    return (box["x"] + shift, box["y"] + box["h"] / 2)


def bottom_anchor(box, shift=0.0):
    return (box["x"] + shift, box["y"] - box["h"] / 2)


def arrow(ax, start, end, label="", curve=0.0, dashed=False, color=EDGE, label_offset=(0.0, 0.18)):
    """Draw an arrow from start to end, optionally curved, labelled near its middle."""
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=16,
            linewidth=1.4,
            color=color,
            linestyle="--" if dashed else "-",
            connectionstyle=f"arc3,rad={curve}",
            shrinkA=2,
            shrinkB=2,
        )
    )
    if label:
        label_x = (start[0] + end[0]) / 2 + label_offset[0]
        label_y = (start[1] + end[1]) / 2 + label_offset[1]
        ax.text(label_x, label_y, label, ha="center", va="bottom", fontsize=8.8, color=color, style="italic")


def row_centres(count, width):
    """Return the x centres of `count` boxes of `width`, spread evenly across a lane."""
    gap = (WIDTH - 2 * LANE_MARGIN - count * width) / (count - 1)
    return [LANE_MARGIN + width / 2 + index * (width + gap) for index in range(count)]


def draw_lane(ax, y_low, y_high, title, command, function):
    """Draw a lane's background with its title, CLI command and Python function."""
    ax.add_patch(
        FancyBboxPatch(
            (0.15, y_low),
            WIDTH - 0.3,
            y_high - y_low,
            boxstyle="round,pad=0.0,rounding_size=0.15",
            facecolor=LANE_FACE,
            edgecolor="#bbbbbb",
            linewidth=1.0,
        )
    )
    ax.text(0.35, y_high - 0.25, title, ha="left", va="top", fontsize=13, weight="bold")
    ax.text(
        0.35,
        y_high - 0.62,
        f"{command}\n{function}",
        ha="left",
        va="top",
        fontsize=9.5,
        color="#555555",
        linespacing=1.35,
    )


def draw_training(ax):
    draw_lane(ax, 7.85, 10.85, "1  Training", "towhee-recsys train", "towhee_recsys.train()")
    y, width = 8.85, 3.0
    x = row_centres(5, width)
    source = draw_box(
        ax, x[0], y, width, "MovieLens 1M or CSV", "ml-1m folder or ml-1m.zip,\nor ratings/movies/users CSV", "data"
    )
    loaders = draw_box(ax, x[1], y, width, "Loaders", "load_movielens()\nload_csv_dataset() -> Dataset", "step")
    vocabularies = draw_box(
        ax, x[2], y, width, "Vocabularies", "ids, demographics, genres,\ntitle words, years -> indices", "step"
    )
    towers = draw_box(
        ax, x[3], y, width, "Paddle two towers", "user tower + movie tower,\nMSE of rating_scale x cosine", "model"
    )
    folder = draw_box(ax, x[4], y, width, "Model folder", "config.json, weights.npz,\nvocabularies.json", "model")
    arrow(ax, right_anchor(source), left_anchor(loaders))
    arrow(ax, right_anchor(loaders), left_anchor(vocabularies), "ratings")
    arrow(ax, right_anchor(vocabularies), left_anchor(towers), "indices")
    arrow(ax, right_anchor(towers), left_anchor(folder), "save")
    return folder


def draw_ingest(ax):
    draw_lane(ax, 4.55, 7.55, "2  Ingest", "towhee-recsys ingest", "ingest_pipeline()")
    y, width = 5.55, 3.0
    x = row_centres(5, width)
    dataset = draw_box(ax, x[0], y, width, "Dataset", "movies, users,\nrated movie ids", "data")
    metadata_write = draw_box(
        ax, x[1], y, width, "metadata_write", "title, genres, year\nof each movie", "store access"
    )
    features = draw_box(ax, x[2], y, width, "movie_features", "Movie -> FeatureBatch\n(vocabulary indices)", "model")
    encoder = draw_box(ax, x[3], y, width, "movie_encoder", "movie tower ->\nunit vectors (n, dim)", "model")
    upsert = draw_box(
        ax, x[4], y, width, "milvus_upsert", "runs after metadata_write;\nupsert by movie_id", "store access"
    )
    arrow(ax, right_anchor(dataset), left_anchor(metadata_write), "movies")
    arrow(ax, top_anchor(dataset, 0.6), top_anchor(features, -0.6), "movies", curve=-0.12, label_offset=(0.0, 0.3))
    arrow(ax, right_anchor(features), left_anchor(encoder), "features")
    arrow(ax, right_anchor(encoder), left_anchor(upsert), "vectors")
    return dataset, metadata_write, upsert


def draw_stores(ax):
    y, width, height = 3.55, 8.2, 1.35
    metadata = draw_box(
        ax,
        4.7,
        y,
        width,
        "Metadata store",
        "movies, users' demographics, rated movie ids, model fingerprint\n"
        "embedded Redis (default)  |  Redis  |  Redis Cluster  |  MySQL",
        "store",
        height,
    )
    milvus = draw_box(
        ax,
        14.3,
        y,
        width,
        "Milvus collection",
        "movie_id, embedding (unit vector; FLAT index, IP metric), genres, year\n"
        "Milvus Lite on a local .db path (default)  |  Milvus server",
        "store",
        height,
    )
    return metadata, milvus


def draw_recommend(ax):
    draw_lane(ax, -0.45, 2.85, "3  Recommend", "towhee-recsys recommend", "recommend_pipeline()")
    y, width, height = 1.05, 2.45, 1.15
    x = row_centres(7, width)
    steps = [
        ("User", "user id, or gender,\nage, occupation", "data"),
        ("user_profile", "demographics +\nrated movie ids", "store access"),
        ("user_features", "User ->\nFeatureBatch", "model"),
        ("user_encoder", "user tower ->\nunit vector", "model"),
        ("milvus_search", "top_k by inner product,\nrated movies excluded", "store access"),
        ("metadata_lookup", "title, genres and\nyear of each hit", "store access"),
        ("Ranked list", "Recommendation:\nmovie_id, title, ..., score", "data"),
    ]
    boxes = [draw_box(ax, x[i], y, width, *step, height=height) for i, step in enumerate(steps)]
    for earlier, later in zip(boxes, boxes[1:], strict=False):
        arrow(ax, right_anchor(earlier), left_anchor(later))

    profile, search, lookup = boxes[1], boxes[4], boxes[5]
    arrow(
        ax,
        bottom_anchor(profile, 0.5),
        bottom_anchor(search, -0.5),
        "rated movie ids (excluded)",
        curve=0.12,
        label_offset=(0.0, -0.72),
    )
    return profile, search, lookup


def draw_legend(ax):
    items = [
        ("model", "loads the model folder"),
        ("store access", "reads or writes a store"),
        ("data", "input or output data"),
    ]
    for index, (kind, text) in enumerate(items):
        face, edge = STYLES[kind]
        left_x = 9.6 + index * 3.0
        ax.add_patch(
            FancyBboxPatch(
                (left_x, 10.32),
                0.42,
                0.3,
                boxstyle="round,pad=0.0,rounding_size=0.05",
                facecolor=face,
                edgecolor=edge,
                linewidth=2.0 if edge == STORE_EDGE else 1.2,
            )
        )
        ax.text(left_x + 0.55, 10.47, text, ha="left", va="center", fontsize=9.5)


def main() -> None:
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    ax.set_xlim(0, WIDTH)
    ax.set_ylim(-0.6, HEIGHT)
    ax.axis("off")

    folder = draw_training(ax)
    dataset, metadata_write, upsert = draw_ingest(ax)
    metadata, milvus = draw_stores(ax)
    profile, search, lookup = draw_recommend(ax)
    draw_legend(ax)

    # Ingest writes both stores, and a recommendation reads them.
    arrow(ax, bottom_anchor(dataset), top_anchor(metadata, -2.95), "users, rated movie ids", label_offset=(0.95, -0.05))
    arrow(ax, bottom_anchor(metadata_write), top_anchor(metadata, 0.6), "movies", label_offset=(0.5, -0.05))
    arrow(ax, bottom_anchor(upsert), top_anchor(milvus, 2.3), "vectors", label_offset=(0.45, -0.05))
    arrow(ax, bottom_anchor(metadata, 0.9), top_anchor(profile, 0.3), "get_user", label_offset=(0.75, -0.2))
    arrow(ax, bottom_anchor(milvus, -2.85), top_anchor(search), "search", label_offset=(-0.45, -0.1))
    arrow(ax, bottom_anchor(metadata, 3.6), top_anchor(lookup, -0.3), "get_movies", label_offset=(2.2, -0.05))

    # One dashed arrow represents the model folder that every green box loads.
    arrow(ax, bottom_anchor(folder), (folder["x"], 7.55), dashed=True, color=MODEL_TEXT)
    ax.text(
        folder["x"] - 0.1,
        7.7,
        "loaded by the green boxes below\n(one model for users and movies)",
        ha="right",
        va="center",
        fontsize=8.8,
        color=MODEL_TEXT,
        style="italic",
    )

    fig.savefig(OUTPUT, dpi=110, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    print(f"Wrote {OUTPUT}")


if __name__ == "__main__":
    main()
