"""Camera simulator: deterministic frames, real MP4 files, events exactly where the truth says."""

from __future__ import annotations

import dataclasses
import itertools

import cv2
import numpy as np
import pytest

from simulators.camera import (
    SCENES,
    ClipSpec,
    EventSpec,
    line_crossings,
    render_clip,
    scene_layout,
    traffic_for,
    truth_for,
    write_jpegs,
    write_mp4,
)

W, H = 320, 180
SMALL = {"width": W, "height": H, "fps": 5.0, "seconds": 4.0}


def frames(spec: ClipSpec) -> list[np.ndarray]:
    return [f for _, f in render_clip(spec)]


def luma(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64)


def crop(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return img[y : y + h, x : x + w]


def outside(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Pixels outside ``box``, flattened."""
    x, y, w, h = box
    mask = np.ones(img.shape[:2], bool)
    mask[y : y + h, x : x + w] = False
    return img[mask]


def stack_plume_box(width: int = W, height: int = H) -> tuple[int, int, int, int]:
    sx, sy = scene_layout("stack", width, height).stack_top
    return (sx - width // 10, sy - height // 4, width // 5, height // 4)


def road_box(scene: str) -> tuple[int, int, int, int]:
    y0, y1 = scene_layout(scene, W, H).road
    return (W // 2 - 40, y0, 80, y1 - y0)


# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scene", SCENES)
def test_same_spec_gives_identical_frames_and_seed_changes_them(scene) -> None:
    spec = ClipSpec(
        scene, **SMALL, shake_px=2.0, events=(EventSpec("fire", 1.0, 3.0, (20, 20, 60, 60)),)
    )
    a, b = frames(spec), frames(spec)
    assert len(a) == spec.n_frames == 20
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(f.dtype == np.uint8 and f.shape == (H, W, 3) for f in a)
    c = frames(dataclasses.replace(spec, seed=1))
    assert all(not np.array_equal(x, y) for x, y in zip(a, c))


def test_offsets_step_by_one_frame_period() -> None:
    offsets = [t for t, _ in render_clip(ClipSpec("highway", **SMALL))]
    assert offsets == pytest.approx([n / 5.0 for n in range(20)])


def test_consecutive_frames_differ_only_by_sensor_noise() -> None:
    a, b = frames(ClipSpec("outfall", **SMALL, noise=2.0))[:2]
    diff = a.astype(np.float64) - b.astype(np.float64)
    # Two independent N(0, 2) draws differ with sigma 2*sqrt(2); rounding adds a little.
    assert 2.3 < diff.std() < 3.4
    assert abs(diff.mean()) < 0.1


def test_mp4_round_trip(tmp_path) -> None:
    spec = ClipSpec("stack", events=(EventSpec("smoke", 2.0, 10.0, (40, 40, 160, 120)),))
    truth = write_mp4(spec, tmp_path / "clip.mp4")
    cap = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    assert cap.isOpened()
    read = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        read.append(frame)
    cap.release()
    assert abs(len(read) - spec.fps * spec.seconds) <= 1
    assert read[0].shape == (360, 640, 3)
    # Lossy, but the decoded frame is still the rendered one.
    first = next(iter(render_clip(spec)))[1]
    assert np.abs(read[0].astype(np.int16) - first).mean() < 6
    assert truth.path == str(tmp_path / "clip.mp4")
    assert truth.n_frames == 100 and truth.fps == 5.0
    assert [(e.kind, e.start_s, e.end_s, e.bbox) for e in truth.events] == [
        ("smoke", 2.0, 10.0, (40, 40, 160, 120))
    ]


def test_jpegs_one_file_per_frame(tmp_path) -> None:
    spec = ClipSpec("construction", **SMALL)
    truth = write_jpegs(spec, tmp_path / "frames")
    files = sorted((tmp_path / "frames").glob("frame_*.jpg"))
    assert len(files) == truth.n_frames == 20
    assert cv2.imread(str(files[0])).shape == (H, W, 3)


@pytest.mark.parametrize("night", [False, True], ids=["day", "night"])
@pytest.mark.parametrize(
    ("kind", "scene", "box"),
    [
        ("smoke", "construction", (W // 4, H // 2, W // 3, H // 3)),
        ("fire", "construction", (W // 3, H // 3, W // 5, H // 4)),
        ("black_smoke", "stack", stack_plume_box()),
        ("vehicle_stop", "highway", road_box("highway")),
        ("person", "construction", (40, 100, 60, 24)),
    ],
)
def test_scene_event_changes_only_its_box_during_its_interval(kind, scene, box, night) -> None:
    start, end = 6.0, 12.0
    base = ClipSpec(scene, width=W, height=H, fps=5.0, seconds=20.0, night=night)
    event = EventSpec(kind, start, end, box, grade=4 if kind == "black_smoke" else 0)
    with_event = dataclasses.replace(base, events=(event,))
    # Vehicles drive in and out around their stop: allow the 4 s a crossing takes.
    margin = 4.0 if kind == "vehicle_stop" else 0.0
    inside = []
    for (t, a), (_, b) in zip(render_clip(base), render_clip(with_event)):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)
        if start <= t < end:
            # Every frame: a visible part of the box changed (plumes start small, then grow).
            assert (crop(diff, box) > 8).mean() > 0.05, (t, (crop(diff, box) > 8).mean())
            assert not outside(diff, box).any(), t
            inside.append(crop(diff, box).mean())
        elif t < start - margin or t >= end + margin:
            assert not diff.any(), t
    assert np.mean(inside) > (4.0 if night else 6.0), np.mean(inside)


def test_camera_events_change_the_whole_frame_only_during_their_interval() -> None:
    base = ClipSpec("stack", **SMALL)
    full = (0, 0, W, H)
    for kind in ("covered", "defocus", "turned"):
        spec = dataclasses.replace(base, events=(EventSpec(kind, 1.0, 2.0),))
        assert truth_for(spec).events[0].bbox == full
        for (t, a), (_, b) in zip(render_clip(base), render_clip(spec)):
            diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
            if 1.0 <= t < 2.0:
                assert diff.mean() > 2.0, (kind, t)
            else:
                assert not diff.any(), (kind, t)


def test_smoke_grows_during_its_interval() -> None:
    box = (30, 20, 120, 90)
    base = ClipSpec("construction", **SMALL, noise=0.0)
    spec = dataclasses.replace(base, events=(EventSpec("smoke", 0.0, 4.0, box),))
    diffs = [
        np.abs(crop(a, box).astype(np.int16) - crop(b, box)).mean()
        for a, b in zip(frames(base), frames(spec))
    ]
    assert diffs[0] < diffs[5] < diffs[10]


def test_black_smoke_darkens_with_ringelmann_grade() -> None:
    box = stack_plume_box()
    means = []
    for grade in range(6):
        spec = ClipSpec(
            "stack", **SMALL, events=(EventSpec("black_smoke", 0.0, 4.0, box, grade=grade),)
        )
        means.append(
            luma(frames(spec)[-1])[box[1] : box[1] + box[3], box[0] : box[0] + box[2]].mean()
        )
    assert all(a > b + 3 for a, b in itertools.pairwise(means)), means
    # The core of a grade 5 plume blocks all light (Ringelmann 5: 100 % obscuration).
    core = luma(
        frames(
            ClipSpec(
                "stack",
                **SMALL,
                noise=0.0,
                events=(EventSpec("black_smoke", 0.0, 4.0, box, grade=5),),
            )
        )[-1]
    )
    x, y, w, h = box
    assert core[y + h // 2, x + w // 2] < 15


def test_fire_has_fire_colours_and_flickers() -> None:
    box = (200, 100, 60, 50)
    spec = ClipSpec("highway", **SMALL, noise=0.0, events=(EventSpec("fire", 0.0, 4.0, box),))
    base = ClipSpec("highway", **SMALL, noise=0.0)
    a, b = frames(spec), frames(base)
    changed = np.abs(crop(a[5], box).astype(np.int16) - crop(b[5], box)).sum(axis=2) > 60
    px = crop(a[5], box)[changed].astype(np.int16)
    assert len(px) > 100
    blue, green, red = px[:, 0], px[:, 1], px[:, 2]
    assert (red >= green).mean() > 0.95 and (green > blue).mean() > 0.95
    assert not np.array_equal(crop(a[5], box), crop(a[6], box))


def test_covered_frames_are_dark_and_flat() -> None:
    spec = ClipSpec("highway", **SMALL, events=(EventSpec("covered", 0.0, 4.0),))
    for f in frames(spec):
        assert luma(f).std() < 4.0 and luma(f).mean() < 20


def test_defocus_lowers_sharpness() -> None:
    def sharpness(f: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())

    base = ClipSpec("construction", **SMALL)
    blurred = dataclasses.replace(base, events=(EventSpec("defocus", 0.0, 4.0),))
    assert sharpness(frames(blurred)[0]) < 0.3 * sharpness(frames(base)[0])


def test_turned_moves_the_scene() -> None:
    base = ClipSpec("stack", **SMALL, noise=0.0)
    turned = dataclasses.replace(base, events=(EventSpec("turned", 0.0, 4.0),))
    a, b = frames(base)[0], frames(turned)[0]
    assert np.abs(luma(a) - luma(b)).mean() > 10


@pytest.mark.parametrize("scene", SCENES)
def test_night_is_darker_than_day(scene) -> None:
    day = frames(ClipSpec(scene, **SMALL))[0]
    night = frames(ClipSpec(scene, **SMALL, night=True))[0]
    assert luma(night).mean() < 0.5 * luma(day).mean()
    assert luma(night).max() > 150  # lights stay bright


def test_shake_moves_frames_by_a_few_pixels() -> None:
    still = frames(ClipSpec("highway", **SMALL, noise=0.0))
    shaken = frames(ClipSpec("highway", **SMALL, noise=0.0, shake_px=3.0))
    assert all(np.array_equal(still[0], f) for f in still)
    assert any(not np.array_equal(shaken[0], f) for f in shaken[1:])


# ------------------------------------------------------------------------------------------
# Bad arguments raise at once.


@pytest.mark.parametrize(
    "make",
    [
        lambda: EventSpec("flood", 0.0, 1.0, (0, 0, 10, 10)),
        lambda: EventSpec("smoke", 2.0, 1.0, (0, 0, 10, 10)),
        lambda: EventSpec("smoke", 0.0, 1.0),
        lambda: EventSpec("covered", 0.0, 1.0, (0, 0, 10, 10)),
        lambda: EventSpec("smoke", 0.0, 1.0, (0, 0, 10, 10), grade=2),
        lambda: EventSpec("black_smoke", 0.0, 1.0, (0, 0, 10, 10), grade=6),
        lambda: ClipSpec("forest"),
        lambda: ClipSpec("stack", width=641),
        lambda: ClipSpec("stack", fps=0.0),
        lambda: ClipSpec("stack", noise=-1.0),
        lambda: ClipSpec("stack", events=(EventSpec("smoke", 0.0, 1.0, (600, 0, 100, 10)),)),
        lambda: EventSpec("person", 0.0, 1.0),
        lambda: ClipSpec("stack", weather="snow"),
        lambda: ClipSpec("outfall", traffic=10.0),  # no road
        lambda: ClipSpec("highway", traffic=-1.0),
    ],
)
def test_bad_specs_are_refused(make) -> None:
    with pytest.raises(ValueError):
        make()


def test_truth_clips_events_to_the_clip() -> None:
    spec = ClipSpec(
        "stack",
        **SMALL,
        events=(
            EventSpec("smoke", 3.0, 9.0, (0, 0, 20, 20)),
            EventSpec("fire", 5.0, 6.0, (0, 0, 20, 20)),
        ),
    )
    truth = truth_for(spec)
    assert [(e.kind, e.end_s) for e in truth.events] == [("smoke", 4.0)]
    assert [e.kind for e in truth.active(3.5)] == ["smoke"] and truth.active(1.0) == ()
    assert truth.as_dict()["events"][0]["bbox"] == (0, 0, 20, 20)


# ------------------------------------------------------------------------------------------
# People, traffic and weather.


def test_person_walks_across_its_box_and_has_an_upright_shape() -> None:
    box = (20, 100, 240, 30)
    base = ClipSpec("construction", **SMALL, night=True, noise=0.0)
    spec = dataclasses.replace(base, events=(EventSpec("person", 0.0, 4.0, box),))
    xs = []
    for a, b in zip(frames(base), frames(spec)):
        ys_, xs_ = np.nonzero(np.abs(a.astype(np.int16) - b).max(axis=2) > 8)
        assert ys_.max() - ys_.min() + 1 >= 0.8 * box[3]  # a figure as tall as its box
        assert xs_.max() - xs_.min() + 1 <= 0.6 * box[3]  # and much narrower
        xs.append(xs_.mean())
    steps = np.diff(xs)
    assert (steps > 0).all() or (steps < 0).all()  # walks one way, the whole width
    assert abs(xs[-1] - xs[0]) > 0.6 * box[2]


def test_traffic_drives_left_above_and_right_below_and_only_on_the_road() -> None:
    spec = ClipSpec("highway", **SMALL, noise=0.0, traffic=60.0)
    vehicles = traffic_for(spec)
    assert vehicles and truth_for(spec).vehicles == vehicles
    y0, y1 = scene_layout("highway", W, H).road
    mid = (y0 + y1) / 2
    for v in vehicles:
        assert y0 <= v.y and v.y + v.height <= y1
        assert (v.speed < 0) == (v.y + v.height / 2 < mid)
    # A longer clip adds vehicles after the shorter one's end, never changes the first ones.
    longer = traffic_for(dataclasses.replace(spec, seconds=20.0))
    assert set(vehicles) <= set(longer)
    still = frames(ClipSpec("highway", **SMALL, noise=0.0))
    for a, b in zip(still, frames(spec)):
        diff = np.abs(a.astype(np.int16) - b).max(axis=2)
        assert not diff[: y0 - 2].any() and not diff[y1 + 2 :].any()
    assert any(np.abs(a.astype(np.int16) - b).max() > 30 for a, b in zip(still, frames(spec)))


def test_line_crossings_follow_the_vehicles() -> None:
    spec = ClipSpec(
        "highway",
        width=W,
        height=H,
        fps=5.0,
        seconds=30.0,
        traffic=30.0,
        seed=3,
        events=(EventSpec("vehicle_stop", 10.0, 15.0, road_box("highway")),),
    )
    truth = truth_for(spec)
    y0, y1 = scene_layout("highway", W, H).road
    down = line_crossings(truth, ((W // 2, y0), (W // 2, y1)))
    up = line_crossings(truth, ((W // 2, y1), (W // 2, y0)))
    assert len(down) >= 8 and [c.t for c in down] == sorted(c.t for c in down)
    assert all(0.0 <= c.t < 30.0 for c in down)
    # Reversing the line swaps the directions.
    assert [(c.t, c.direction) for c in up] == [
        (c.t, "backward" if c.direction == "forward" else "forward") for c in down
    ]
    # Forward (left to right) crossings are the lower lanes' vehicles, and the stopping car.
    for c in down:
        if c.vehicle.startswith("traffic"):
            v = truth.vehicles[int(c.vehicle[7:])]
            assert (c.direction == "forward") == (v.speed > 0)
            assert v.left(c.t) + v.width / 2 == pytest.approx(W // 2, abs=1e-3)
    stop = [c for c in down if c.vehicle == "stop0"]
    assert len(stop) == 1 and stop[0].direction == "forward" and stop[0].t <= 10.0
    assert line_crossings(truth, ((0, y0), (W, y0))) == ()  # parallel to the traffic


@pytest.mark.parametrize("night", [False, True], ids=["day", "night"])
def test_rain_streaks_change_every_frame_and_fog_lowers_contrast(night) -> None:
    clear = frames(ClipSpec("construction", **SMALL, noise=0.0, night=night))
    rain = frames(ClipSpec("construction", **SMALL, noise=0.0, night=night, weather="rain"))
    fog = frames(ClipSpec("construction", **SMALL, noise=0.0, night=night, weather="fog"))
    assert all(np.array_equal(clear[0], f) for f in clear)
    assert not np.array_equal(rain[0], rain[1])
    assert luma(rain[0]).mean() < luma(clear[0]).mean()  # overcast
    assert luma(fog[0]).std() < 0.85 * luma(clear[0]).std()
    assert (
        frames(ClipSpec("construction", **SMALL, noise=0.0, night=night, weather="rain"))[
            3
        ].tobytes()
        == rain[3].tobytes()
    )
