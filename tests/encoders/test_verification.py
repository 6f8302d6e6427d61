"""Tests for normface.encoders.verification: LFW pairs parsing, k-fold protocol, descriptor cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from normface.encoders import verification
from normface.encoders.base import EncoderOutput, IdentityEncoder


class _ChannelMeans(IdentityEncoder):
    """A cheap stand-in network: descriptor = per-channel means plus the top-left pixel."""

    name, chip_size, feature_dim, descriptor_dim = "channel_means", 150, 3, 6

    def encode(self, chips):
        chips = self.check_chips(chips)
        means = tf.reduce_mean(chips, axis=[1, 2])
        return EncoderOutput(means, tf.concat([means, chips[:, 0, 0, :]], axis=1))


def test_reads_the_official_lfw_pairs(data_root):
    pairs = verification.read_lfw_pairs(data_root / "lfw_pairs.txt", data_root / "lfw")
    assert len(pairs) == 6000
    assert sorted(set(p.fold for p in pairs)) == list(range(10))
    assert sum(p.same for p in pairs) == 3000
    first = pairs[0]
    assert first.same and first.path_a.name == "Abel_Pacheco_0001.jpg"
    assert first.path_b.name == "Abel_Pacheco_0004.jpg"
    assert all(p.path_a.is_file() and p.path_b.is_file() for p in pairs[:50])
    assert not pairs[300].same and pairs[300].fold == 0 and pairs[600].fold == 1


def test_malformed_pairs_file_names_the_line(tmp_path):
    bad = tmp_path / "pairs.txt"
    bad.write_text("1\t1\nA\t1\t2\nB\t1\n")
    with pytest.raises(ValueError, match=r"pairs\.txt:3: expected 3 or 4 fields"):
        verification.read_lfw_pairs(bad, tmp_path)
    bad.write_text("1\t1\nA\t1\tB\t2\nA\t1\t2\n")
    with pytest.raises(ValueError, match=r"pairs\.txt:2: pair kind"):
        verification.read_lfw_pairs(bad, tmp_path)
    bad.write_text("one fold\n")
    with pytest.raises(ValueError, match=r"pairs\.txt:1"):
        verification.read_lfw_pairs(bad, tmp_path)


def test_kfold_threshold_is_fitted_on_the_other_folds():
    rng = np.random.default_rng(0)
    same = np.tile([True, False], 100)
    distances = np.where(same, rng.uniform(0.1, 0.5, 200), rng.uniform(0.7, 1.2, 200))
    folds = np.repeat(np.arange(10), 20)
    accuracies, thresholds = verification.kfold_accuracy(distances, same, folds)
    assert accuracies.shape == (10,) and np.all(accuracies == 1.0)
    assert np.all((thresholds > 0.5) & (thresholds < 0.7))
    # One fold with flipped labels: its own threshold cannot see that, so it scores 0.
    flipped = same.copy()
    flipped[folds == 3] = ~flipped[folds == 3]
    accuracies, _ = verification.kfold_accuracy(distances, flipped, folds)
    assert accuracies[3] == 0.0 and accuracies[np.arange(10) != 3].min() == 1.0


def test_descriptor_cache_round_trip(tmp_path):
    cache = verification.DescriptorCache(tmp_path / "c" / "d.npz", tmp_path)
    cache.entries[cache.key(tmp_path / "a" / "x.jpg")] = (np.arange(3, dtype=np.float32), "hog")
    cache.entries["b/y.jpg"] = (np.ones(3, np.float32), "center")
    cache.save()
    again = verification.DescriptorCache(tmp_path / "c" / "d.npz", tmp_path)
    assert set(again.entries) == {"a/x.jpg", "b/y.jpg"}
    np.testing.assert_array_equal(again.entries["a/x.jpg"][0], [0, 1, 2])
    assert again.entries["b/y.jpg"][1] == "center"


def test_chip_options_tag_and_bad_method():
    options = verification.ChipOptions("tf", "largest", ("hog", "cnn"), True)
    assert options.tag() == "tf_largest_hog+cnn_flip"
    image = np.zeros([60, 60, 3], np.uint8)
    with pytest.raises(ValueError, match="chip_method"):
        verification.face_chip(image, verification.ChipOptions(chip_method="bicubic"))


def test_jittered_descriptor_is_the_mean_over_dlib_jitter_copies():
    pytest.importorskip("dlib")
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, (2, 150, 150, 3)).astype(np.uint8)
    chips[:, :, :75] //= 4  # left/right asymmetric, so mirrored copies differ
    encoder = _ChannelMeans()
    made = []

    def recording_jitter(chip, n):
        copies = verification.dlib_jitter(chip, n)
        made.append(copies)
        return copies

    descriptors = verification.chip_descriptors(chips, encoder, 5, jitter_fn=recording_jitter)
    assert descriptors.shape == (2, 6) and descriptors.dtype == np.float32
    assert len(made) == 2 and all(c.shape == (5, 150, 150, 3) and c.dtype == np.uint8 for c in made)
    assert not np.array_equal(made[0][0], chips[0])  # jittered, and dlib adds no plain copy
    for chip_copies, descriptor in zip(made, descriptors):
        np.testing.assert_allclose(descriptor, encoder.encode_numpy(chip_copies)[1].mean(0),
                                   rtol=1e-5)
    # As dlib's num_jitters: 0 and 1 mean the network's plain descriptor.
    plain = encoder.encode_numpy(chips)[1]
    for off in (0, 1):
        np.testing.assert_array_equal(
            verification.chip_descriptors(chips, encoder, off, jitter_fn=recording_jitter), plain)
    assert len(made) == 2


def test_jitter_option_tag_and_validation():
    assert verification.ChipOptions(jitter=10).tag() == "dlib_center_hog_jitter10"
    assert verification.ChipOptions(jitter=1).tag() == verification.ChipOptions().tag()
    with pytest.raises(ValueError, match="jitter"):
        verification.ChipOptions(jitter=-1)
    with pytest.raises(ValueError, match="square"):
        verification.dlib_jitter(np.zeros([150, 120, 3], np.uint8), 2)


def test_result_record_holds_the_protocol_and_every_fold(tmp_path):
    pairs = [verification.FacePair(tmp_path / f"a{i}.jpg", tmp_path / f"b{i}.jpg", i % 2 == 0, i // 2)
             for i in range(6)]
    result = verification.VerificationResult(np.array([1.0, 0.5, 0.75]), np.array([0.6, 0.55, 0.58]),
                                             {"hog": 11, "center": 1}, ("x/x_0001.jpg",))
    options = verification.ChipOptions(detectors=("hog", "cnn"), jitter=10)
    record = verification.result_record(result, pairs, "dlib", options, commit="abc", wall_seconds=1.5)
    protocol = record["protocol"]
    assert protocol["pairs"] == 6 and protocol["same_pairs"] == 3 and protocol["different_pairs"] == 3
    assert protocol["folds"] == 3 and protocol["jitter"] == 10 and protocol["detectors"] == ["hog", "cnn"]
    assert protocol["options_tag"] == "dlib_center_hog+cnn_jitter10" and protocol["encoder"] == "dlib"
    assert record["fold_accuracies"] == [1.0, 0.5, 0.75] and record["thresholds"] == [0.6, 0.55, 0.58]
    assert record["accuracy_mean"] == pytest.approx(0.75) and record["accuracy_std"] == pytest.approx(np.std([1.0, 0.5, 0.75]))
    assert record["images"] == 12 and record["detector_misses"] == ["x/x_0001.jpg"]
    assert record["commit"] == "abc" and record["wall_seconds"] == 1.5
    assert json.loads(json.dumps(record)) == record  # JSON-ready


def test_committed_lfw_result_backs_the_readme():
    """The committed LFW View 2 result (experiments/lfw_verification.py's JSON) is the full
    protocol, its mean is its folds' mean, and the README quotes it."""
    from normface.utils import paths

    record = json.loads((paths.REPO_ROOT / "experiments" / "results"
                         / "lfw_view2_dlib_center_hog+cnn_jitter10.json").read_text())
    protocol = record["protocol"]
    assert protocol["pairs"] == 6000 and protocol["same_pairs"] == protocol["different_pairs"] == 3000
    assert protocol["folds"] == 10 and protocol["jitter"] == 10 and protocol["detectors"] == ["hog", "cnn"]
    assert len(record["fold_accuracies"]) == len(record["thresholds"]) == 10
    assert record["accuracy_mean"] == pytest.approx(np.mean(record["fold_accuracies"]), abs=1e-12)
    assert record["accuracy_std"] == pytest.approx(np.std(record["fold_accuracies"]), abs=1e-12)
    assert record["descriptors_cached_before"] == 0  # every descriptor computed in that run
    readme = " ".join((paths.REPO_ROOT / "README.md").read_text().split())  # line breaks do not matter
    quoted = f"**{100 * record['accuracy_mean']:.2f}% ± {100 * record['accuracy_std']:.2f}%**"
    assert quoted in readme and "lfw_view2_dlib_center_hog+cnn_jitter10.json" in readme
