"""The model version (mcexplore.constants.MODEL_VERSION) moves with the model's results.

A sweep's resume key includes the model version, so that rows of an older model are never mixed
into a newer table. That works only if the version changes whenever the numbers do: this test
holds a digest of reference trials (every strategy, page and block level, numpy engine: the
reference, which the other engines equal bit for bit) to the version. When a change to the model
changes them on purpose, bump MODEL_VERSION and record the new digest here; when it does not mean
to, the change is a bug.
"""

import hashlib

import numpy as np

import mcexplore.api as api
from mcexplore.constants import MODEL_VERSION
from mcexplore.scenario import load_scenario

# MODEL_VERSION -> sha256 of the reference trials' records (see _digest)
DIGESTS = {
    1: "b1f49ac95bf170dd29623a434ba74d8338a97a659d3a2e9885417bb627c1df96",
}


def _digest() -> str:
    h = hashlib.sha256()
    page = load_scenario("thread-2018").set_many([
        ("page.mapcount", 3), ("page.active", 3), ("budget.max_attempts", 30), ("budget.timeout", "10ms")])
    block = load_scenario("thread-2018-block", overrides=[  # shrunk as tests/test_parity.py does
        "block.pages=40",
        'block.classes=[{count=20,kind="file",mapcount=0},'
        '{count=1,kind="file",mapcount=5,active="all",access_rate="1/us"},'
        '{count=19,kind="anon",mapcount=1}]',
        "block.batch_pages=16", "budget.max_attempts=12", 'budget.timeout="5ms"'])
    for sc, trials in ((page, 40), (block, 16)):
        res = api.run(sc, trials=trials, seed=2018, backend="numpy", records=True)
        for label in res.labels:
            h.update(label.encode())
            h.update(np.ascontiguousarray(res[label].records.matrix(), dtype="<i8").tobytes())
    return h.hexdigest()


def test_model_version_matches_the_reference_trials():
    got = _digest()
    want = DIGESTS.get(MODEL_VERSION)
    assert want, f"MODEL_VERSION {MODEL_VERSION} has no digest: add {MODEL_VERSION}: {got!r} to DIGESTS"
    assert got == want, (
        f"the reference trials changed under MODEL_VERSION {MODEL_VERSION}: if the model changed on "
        f"purpose, bump mcexplore.constants.MODEL_VERSION and add its digest {got!r} to DIGESTS "
        "(saved sweep rows of the older model are then recomputed, not mixed in); if not, this is a bug")
