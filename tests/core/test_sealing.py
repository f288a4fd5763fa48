"""Sealed values (app.core.security.seal): readable only under the same SECRET_KEY and purpose, unaltered
and within their age."""

from __future__ import annotations

import time

from app.core.security import seal, unseal


def test_a_sealed_value_opens_under_its_key_and_purpose_only():
    sealed = seal("key-one", "purpose a", "pfl_abc_secret")
    assert "pfl_abc_secret" not in sealed
    assert unseal("key-one", "purpose a", sealed, max_age_s=60) == "pfl_abc_secret"
    assert unseal("key-two", "purpose a", sealed, max_age_s=60) is None
    assert unseal("key-one", "purpose b", sealed, max_age_s=60) is None


def test_an_altered_or_stale_value_does_not_open():
    sealed = seal("key-one", "purpose a", "pfl_abc_secret")
    altered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    assert unseal("key-one", "purpose a", altered, max_age_s=60) is None
    assert unseal("key-one", "purpose a", "not a sealed value", max_age_s=60) is None
    time.sleep(1.1)
    assert unseal("key-one", "purpose a", sealed, max_age_s=0) is None
