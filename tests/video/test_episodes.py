"""EpisodeTracker (start, keep-alive, cleared; latched tamper findings) and ClipRecorder (MP4
around a start)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from farsight.evidence import EvidenceStore
from video.clips import ClipRecorder
from video.episodes import EpisodeTracker, FrameFindings, episodes_of


def obs(
    kind: str,
    zone: str | None = None,
    conf: float = 0.8,
    ts: str = "t",
    latched: bool = False,
    **detail,
) -> dict:
    d = {"state": "active", **detail} if latched else dict(detail)
    return {
        "kind": kind,
        "zone": zone,
        "confidence": conf,
        "ts": ts,
        "evidence": ["a" * 64],
        "detail": d,
    }


def states(msgs: list[dict]) -> list[tuple[str, str]]:
    return [(m["kind"], m["state"]) for m in msgs]


def test_per_frame_finding_starts_at_once_is_kept_alive_and_clears_after_absence():
    tr = EpisodeTracker(resend_s=5.0, clear_after_s=3.0)
    assert states(tr.update(0.0, "t0", [obs("smoke")])) == [("smoke", "active")]
    assert tr.update(1.0, "t1", [obs("smoke")]) == []  # within resend_s: nothing new
    sent = tr.update(5.0, "t5", [obs("smoke", conf=0.9, ts="t5")])
    assert (
        states(sent) == [("smoke", "active")]
        and sent[0]["confidence"] == 0.9
        and sent[0]["ts"] == "t5"
    )
    assert tr.update(7.0, "t7", []) == []  # absent 2 s: not yet
    cleared = tr.update(8.0, "t8", [])
    assert states(cleared) == [("smoke", "cleared")]
    assert (
        cleared[0]["confidence"] == 0.0
        and cleared[0]["ts"] == "t8"
        and cleared[0]["detail"] == {"state": "cleared"}
    )
    assert tr.active == frozenset()


def test_zones_are_separate_episodes_and_duplicate_boxes_count_once():
    tr = EpisodeTracker()
    sent = tr.update(
        0.0, "t0", [obs("motion", "gate"), obs("motion", "gate"), obs("motion", "yard")]
    )
    assert [(m["zone"], m["state"]) for m in sent] == [("gate", "active"), ("yard", "active")]
    sent = tr.update(3.5, "t3", [obs("motion", "gate")])
    assert [(m["zone"], m["state"]) for m in sent] == [("yard", "cleared")]


def test_latched_finding_is_restated_until_its_analyser_clears_it():
    tr = EpisodeTracker(resend_s=2.0, clear_after_s=1.0)
    assert states(tr.update(0.0, "t0", [obs("camera_covered", latched=True)])) == [
        ("camera_covered", "active")
    ]
    # No more findings from the analyser (tamper reports once), yet it is neither cleared nor
    # silent.
    restated = []
    for k in range(1, 11):
        restated += tr.tick(float(k), f"t{k}")
    assert states(restated) == [("camera_covered", "active")] * 5
    assert [m["ts"] for m in restated] == ["t2", "t4", "t6", "t8", "t10"]  # each a new reading
    sent = tr.update(11.0, "t11", [], cleared=[("camera_covered", None)])
    assert states(sent) == [("camera_covered", "cleared")] and sent[0]["ts"] == "t11"
    assert tr.tick(20.0, "t20") == []


def test_black_smoke_grade_is_dropped_from_the_clear_message():
    tr = EpisodeTracker(clear_after_s=1.0)
    tr.update(0.0, "t0", [obs("black_smoke", ringelmann=3.0)])
    cleared = tr.update(2.0, "t2", [])
    assert cleared[0]["detail"] == {"state": "cleared"}  # a grade left in it would read as smoke


def test_end_all_and_clip_evidence():
    tr = EpisodeTracker()
    tr.update(0.0, "t0", [obs("fire"), obs("camera_moved", latched=True)])
    tr.add_evidence("camera_moved", "b" * 64)
    sent = {m["kind"]: m for m in tr.tick(6.0, "t6")}
    assert sent["camera_moved"]["state"] == "active" and sent["camera_moved"]["evidence"] == [
        "a" * 64,
        "b" * 64,
    ]
    assert sent["fire"]["state"] == "cleared"  # per-frame, not seen for 6 s
    ended = tr.end_all("t9")
    assert states(ended) == [("camera_moved", "cleared")]
    assert all(m["ts"] == "t9" for m in ended) and tr.active == frozenset()


def test_tracker_refuses_non_positive_intervals():
    with pytest.raises(ValueError):
        EpisodeTracker(resend_s=0)


def frame(i: int) -> np.ndarray:
    img = np.full((72, 96, 3), 40, np.uint8)
    cv2.rectangle(img, (i % 80, 20), (i % 80 + 15, 50), (0, 0, 255), -1)
    return img


def test_clip_holds_the_seconds_before_and_after_a_start(tmp_path):
    store = EvidenceStore(tmp_path / "ev")
    rec = ClipRecorder(store, pre_s=2.0, post_s=3.0)
    done = {}
    fps = 5.0
    for i in range(60):
        t = i / fps
        if i == 25:
            rec.start("smoke", t)
            rec.start("smoke", t)  # a second start of the same kind while one is open: ignored
        done.update(rec.push(t, frame(i)))
    assert list(done) == ["smoke"] and rec.written == 1
    path = store.path(done["smoke"])
    assert path.suffix == ".mp4"
    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    got_fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    # 2 s before (frames 15..24), the start frame, 3 s after (to frame 40): 26 frames at 5 fps.
    assert n == 26 and abs(got_fps - fps) < 0.01


def test_clip_lengths_are_checked(tmp_path):
    with pytest.raises(ValueError):
        ClipRecorder(EvidenceStore(tmp_path), 0.0, 0.0)


def test_crossings_are_published_one_by_one_and_never_cleared():
    tr = EpisodeTracker(resend_s=1.0, clear_after_s=1.0)
    c1 = obs("vehicle_crossing", "line", direction="forward", count_forward=1)
    c2 = obs("vehicle_crossing", "line", direction="forward", count_forward=2)
    sent = tr.update(0.0, "t0", [c1, c2])
    assert [m["detail"]["count_forward"] for m in sent] == [1, 2] and all(
        m["state"] == "active" for m in sent
    )
    assert tr.active == frozenset() and tr.tick(10.0, "t10") == []


# --------------------------------------------------------------------------- episodes of a file


def row(kind: str, t: float, conf: float = 0.8, zone: str | None = None, **kw) -> dict:
    r = obs(kind, zone, conf, ts=f"t{t:g}", **kw)
    return {**r, "offset_s": t, "bbox": [int(10 * t), 0, 5, 5], "evidence": [f"{kind}{t:g}"]}


def frames_of(seconds: float, fps: float, at: dict[float, list[dict]], cleared=None):
    cleared = cleared or {}
    for i in range(round(seconds * fps)):
        t = round(i / fps, 6)
        yield FrameFindings(t, f"t{t:g}", tuple(at.get(t, ())), tuple(cleared.get(t, ())))


def test_per_frame_rows_become_one_episode_per_run_split_by_the_clear_gap():
    # Smoke at 1.0-2.0 s, a 1 s hole (shorter than clear_after_s), 3.0-4.0 s, then a 4 s hole,
    # then 8.0-8.5 s: two episodes.
    times = [1.0, 1.5, 2.0, 3.0, 3.5, 4.0, 8.0, 8.5]
    at = {t: [row("smoke", t, conf=0.6 + 0.01 * t)] for t in times}
    at[3.5] = [row("smoke", 3.5, conf=0.99), row("smoke", 3.5, conf=0.7)]  # two boxes, one frame
    eps = list(episodes_of(frames_of(10.0, 2.0, at), clear_after_s=3.0))
    assert [(e["offset_s"], e["end_s"], e["ongoing"]) for e in eps] == [
        (1.0, 4.0, False),
        (8.0, 8.5, True),
    ]
    first = eps[0]
    assert (first["confidence"], first["peak_offset_s"], first["bbox"]) == (
        0.99,
        3.5,
        [35, 0, 5, 5],
    )
    assert first["frames"] == 6 and first["ts"] == "t1"
    assert first["evidence"] == [f"smoke{t:g}" for t in times[:6]]
    assert first["peak_evidence"] == ["smoke3.5"]


def test_latched_finding_lasts_until_cleared_and_point_kinds_are_their_own_episodes():
    at = {
        2.0: [row("camera_covered", 2.0, conf=0.9, latched=True)],
        3.0: [row("vehicle_crossing", 3.0, zone="line"), row("vehicle_crossing", 3.0, zone="line")],
        9.0: [row("camera_moved", 9.0, latched=True)],
    }
    cleared = {7.0: [("camera_covered", None)]}
    eps = list(episodes_of(frames_of(12.0, 1.0, at, cleared), clear_after_s=1.0))
    got = [(e["kind"], e["offset_s"], e["end_s"], e["ongoing"]) for e in eps]
    assert got == [
        ("vehicle_crossing", 3.0, 3.0, False),
        ("vehicle_crossing", 3.0, 3.0, False),
        ("camera_covered", 2.0, 7.0, False),  # reported once, open until its analyser clears it
        ("camera_moved", 9.0, 11.0, True),  # still moved when the file ends: its last frame
    ]
    assert eps[2]["confidence"] == 0.9 and eps[2]["frames"] == 1


def test_zones_are_separate_episodes_and_an_empty_file_has_none():
    at = {0.0: [row("motion", 0.0, zone="gate"), row("motion", 0.0, zone="yard")]}
    eps = list(episodes_of(frames_of(5.0, 1.0, at), clear_after_s=2.0))
    assert sorted((e["zone"], e["end_s"], e["ongoing"]) for e in eps) == [
        ("gate", 0.0, False),
        ("yard", 0.0, False),
    ]
    assert list(episodes_of(frames_of(5.0, 1.0, {}))) == []
