"""Request bodies of the API (pydantic): sizes and shapes are checked here, the rules of a project in
:mod:`cxrlab.annotate.marks`. A body that fails either gets a 4xx and changes nothing."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Name = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
Box = list[float]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(Strict):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class MarkIn(Strict):
    """A new mark: a label with a box ``[x_min, y_min, x_max, y_max]`` in original pixels, or an image-level
    label (no box). ``proposal_id`` adopts a proposal (its label and box unless given here)."""

    label: str | None = Field(default=None, max_length=64)
    box: Box | None = Field(default=None, min_length=4, max_length=4)
    proposal_id: int | None = None


class MarkPatch(Strict):
    """A change to one mark; ``version`` is the one the client read (a stale one gets 409). Sending
    ``"box": null`` turns a box into an image-level label."""

    version: int
    label: str | None = Field(default=None, max_length=64)
    box: Box | None = Field(default=None, min_length=4, max_length=4)


class ConsensusMark(Strict):
    label: str = Field(max_length=64)
    box: Box | None = Field(default=None, min_length=4, max_length=4)
    provenance: Literal["fusion", "edited", "adjudicator"] = "adjudicator"


class ConsensusIn(Strict):
    """The whole adjudicated set of one image, replacing the previous one in one transaction."""

    version: int
    marks: list[ConsensusMark] = Field(max_length=500)
    complete: bool = False


class UserIn(Strict):
    name: str = Name
    role: Literal["admin", "radiologist", "adjudicator"]
    password: str = Field(min_length=8, max_length=256)


class ProjectIn(Strict):
    name: str = Name
    labels: str | list[str] = "vindr"
    readers: int = Field(default=3, ge=1, le=20)
    test_readers: int = Field(default=5, ge=1, le=20)
    allow_proposals: bool = False


class MemberIn(Strict):
    user: str = Field(min_length=1, max_length=64)


class ImportIn(Strict):
    source: str = Field(min_length=1, max_length=4096)
    split: str | None = Field(default=None, max_length=16)
    images_root: str | None = Field(default=None, max_length=4096)
    proposals: bool = False
    renditions: bool = True
    """Make each new image's display data in the job (else on the first view)."""
