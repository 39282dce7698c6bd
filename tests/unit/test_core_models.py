"""Value objects: immutable, picklable (apps cache users), secrets out of repr."""

from __future__ import annotations

import copy
import pickle

import pytest

from mindmesh_auth.testing.contract import _user


def test_user_survives_pickle_and_deepcopy_with_its_profile() -> None:
    user = _user(1, first_name="Ada", tags=["a", "b"])
    for clone in (pickle.loads(pickle.dumps(user)), copy.deepcopy(user), copy.copy(user)):
        assert clone == user
        assert clone.first_name == "Ada" and clone.profile["tags"] == ["a", "b"]


def test_user_profile_is_read_only() -> None:
    user = _user(1, first_name="Ada")
    with pytest.raises(TypeError):
        user.profile["first_name"] = "Eve"  # type: ignore[index]
    with pytest.raises(TypeError):
        user.profile.update(first_name="Eve")  # type: ignore[attr-defined]
    assert user.first_name == "Ada"


def test_unknown_attribute_is_an_attribute_error() -> None:
    user = _user(1)
    with pytest.raises(AttributeError):
        _ = user.nickname
    assert not hasattr(user, "_private")


def test_user_repr_hides_the_password_hash() -> None:
    user = _user(1)
    assert user.password_hash not in repr(user)
