"""Operator user-features: turn users into the model's feature indices."""

from __future__ import annotations

from collections.abc import Sequence

from towhee_recsys.operators._base import ModelOperator

from towhee_recsys.data.dataset import User
from towhee_recsys.features import FeatureBatch
from towhee_recsys.validation import invalid_parameter


class UserFeatures(ModelOperator):
    """Encode one `User` (or a list of them) with the model's vocabularies.

    A user id the model never saw in training, or a missing value, maps to the
    reserved unknown index, so new users are encoded from demographics alone. A
    demographic value that the vocabulary does not contain is an error when it came
    from the caller, because a typo would otherwise silently count as "unknown".

    Args:
        model: a loaded `RecommenderModel` (shared with other operators), or
        model_dir: a model folder, loaded once per process.
    """

    name = "towhee-recsys/user-features"

    def run(self, users: User | Sequence[User]) -> FeatureBatch:
        single = isinstance(users, User)
        if not single and not isinstance(users, (list, tuple)):
            raise invalid_parameter("users", "a towhee_recsys User or a list of them", users)
        batch = [users] if single else list(users)
        for user in batch:
            if not isinstance(user, User):
                raise invalid_parameter("user", "a towhee_recsys User", user)
            if user.user_id is None or user.user_id not in self.model.vocabularies.user_id:
                self._check_demographics(user)
        return FeatureBatch(self.model.vocabularies.encode_users(batch), single=single)

    def _check_demographics(self, user: User) -> None:
        vocabularies = self.model.vocabularies
        for field, vocabulary in (
            ("gender", vocabularies.gender),
            ("age", vocabularies.age),
            ("occupation", vocabularies.occupation),
        ):
            value = getattr(user, field)
            if value is not None and value not in vocabulary:
                known = ", ".join(vocabulary.tokens[:30])
                raise invalid_parameter(field, f"one of the values seen in training ({known})", value)
