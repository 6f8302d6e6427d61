"""Mutation smoke check: break the code on purpose in a copy and check the tests notice (issue 14).

    python tests/mutation_smoke.py [--only NAME ...] [--list] [--no-baseline] [--keep]

Copies the working tree (tracked and untracked, not ignored files) to a temporary folder, runs
the chosen tests there unchanged (the baseline: they must pass, none skipped), then for each
breakage below applies it, reruns its tests and restores the file. A breakage is *caught* when
pytest reports failed tests; anything else (passing, an import or collection error, a timeout)
is reported as not caught. Exit status 0 only when the baseline passes and every breakage is
caught. Not part of the default suite (pytest collects only ``test_*.py``); it needs the face
data ($NORMFACE_DATA or ../shared/data) and takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    path: str  # file to edit, relative to the repository root
    edits: tuple[tuple[str, str], ...]  # (exact old text, occurring once; new text)
    tests: tuple[str, ...]  # pytest node ids that must fail


TRAINING = "tests/training/test_training.py"
METRICS = "tests/evaluation/test_metrics.py"
TFA_SHAPES = "tests/warp/test_tfa_shapes.py"
MUTATIONS = (
    Mutation(
        "texture_sign", "the texture term enters the training loss with the wrong sign",
        "normface/training/trainer.py",
        (('total = cfg.landmark_weight * terms["landmark"] + cfg.texture_weight * terms["texture"]',
          'total = cfg.landmark_weight * terms["landmark"] - cfg.texture_weight * terms["texture"]'),),
        (f"{TRAINING}::test_each_loss_term_decreases_on_its_own",
         f"{TRAINING}::test_one_batch_total_equals_a_hand_computation"),
    ),
    Mutation(
        "best_is_worst", "the best-checkpoint rule keeps the worst checkpoint",
        "normface/training/checkpoints.py",
        (('return metrics["identity/within"] - 1e-3 * metrics["identity/median"]',
          'return -(metrics["identity/within"] - 1e-3 * metrics["identity/median"])'),
         ('return -metrics["validation/total"]', 'return metrics["validation/total"]')),
        (f"{TRAINING}::test_best_checkpoint_follows_injected_validation_scores",
         f"{TRAINING}::test_selection_score_and_best_else_latest"),
    ),
    Mutation(
        "strategy_fallback", "--strategy=mirrored and multi_worker silently fall back to the default strategy",
        "normface/training/strategy.py",
        (('    if name == "default":\n', '    if name in ("default", "mirrored", "multi_worker"):\n'),),
        (f"{TRAINING}::test_mirrored_on_two_cpus_matches_the_default_strategy",
         f"{TRAINING}::test_multi_worker_two_local_workers"),
    ),
    Mutation(
        "normalizer_grey", "the normalizer outputs constant grey and the 'output' descriptor comes from the input",
        "normface/serving/normalizer.py",
        (('image = tf.clip_by_value(out["image"], 0.0, 1.0)', 'image = tf.zeros_like(out["image"]) + 0.5'),
         ('out_desc = encoder.encode(face_chips(encoder, image * 255.0, out["landmarks"])).descriptor',
          'out_desc = encoder.encode(face_chips(encoder, aligned, landmarks)).descriptor')),
        ("tests/serving/test_pretrained.py::test_identity_on_held_out_people",
         "tests/serving/test_normalizer.py::test_normalizer_results",
         "tests/serving/test_normalizer.py::test_normalizer_output_and_confidence_come_from_the_decoder"),
    ),
    Mutation(
        "identity_share_one", "IdentityMetric's share is always 1.0",
        "normface/training/losses.py",
        (('"within": tf.where(count > 0, self.within / tf.maximum(count, 1.0), nan)',
          '"within": tf.where(count > 0, tf.ones_like(count), nan)'),),
        ("tests/training/test_losses.py",),
    ),
    Mutation(
        "warp_identity", "the warp returns its input image",
        "normface/warp/sparse.py",
        (("warped = warp_with_flow(image, dense_flow, resampling)", "warped = image"),),
        ("tests/warp/test_warp.py::test_sparse_image_warp_matches_reference",
         "tests/warp/test_warp.py::test_warp_to_landmarks_uses_xy_and_moves_content"),
    ),
    Mutation(
        "warp_unknown_rank_refused", "sparse_image_warp refuses an image traced with an unknown rank again",
        "normface/warp/sparse.py",
        (("        check = tf.debugging.assert_rank_in(image, [2, 3, 4], message=IMAGE_RANK_MESSAGE)\n",
          '        raise ValueError(f"image must have a known rank (2, 3 or 4), got shape {image.shape}")\n'),),
        (f"{TFA_SHAPES}::test_runs_as_the_reference[sparse_image4_unknown_rank]",
         f"{TFA_SHAPES}::test_fails_as_the_reference[sparse_image5_unknown_rank]"),
    ),
    Mutation(
        "spline_unknown_rank_accepted",
        "interpolate_spline runs train points of unknown rank, where the reference raises",
        "normface/warp/spline.py",
        (('        check_known_rank(train_points, 3, "train_points", "[batch, n, d]", "interpolate_spline")\n', ""),),
        (f"{TFA_SHAPES}::test_fails_as_the_reference[spline_all_unknown_rank]",),
    ),
    Mutation(
        "spline_gradients_swapped", "the spline's per-input gradients come back in the wrong order (d/dc for d/dw)",
        "normface/warp/spline.py",
        (("return dq, grad_centers(q, c, w, g, eps, order), grad_weights(q, c, g, eps, order)",
          "return dq, grad_weights(q, c, g, eps, order), grad_centers(q, c, w, g, eps, order)"),),
        (f"{TFA_SHAPES}::test_runs_as_the_reference[sparse_source_only_gradient]",),
    ),
    Mutation(
        "spline_gradients_one_kernel", "d/dw of the spline needs d/dc again, as in one backward kernel (no pruning)",
        "normface/warp/spline.py",
        (("return dq, grad_centers(q, c, w, g, eps, order), grad_weights(q, c, g, eps, order)",
          "dc = grad_centers(q, c, w, g, eps, order); "
          "return dq, dc, grad_weights(q, c, g, eps, order) + 0.0 * tf.reduce_sum(dc)"),),
        (f"{TFA_SHAPES}::test_source_only_gradient_computes_no_other_gradient",),
    ),
    Mutation(
        "split_checks_off", "the split checks are disabled (a person may sit in two splits)",
        "normface/data/splits.py",
        (('    """Raises ValueError if any person is in two splits."""\n',
          '    """Raises ValueError if any person is in two splits."""\n    return\n'),),
        ("tests/data/test_splits.py",),
    ),
    Mutation(
        "filter_fitted_on_test", "the expression filter's asset lists a held-out London person among its fitted people",
        "normface/faces/assets/expression_filter.json",
        (('  "london/173"\n', '  "london/173",\n  "london/005"\n'),),
        ("tests/faces/test_quality.py",),
    ),
    Mutation(
        "frontalize_noop", "the frontalization baseline returns the similarity-aligned photo unchanged",
        "normface/evaluation/frontalize.py",
        (("    out = background.copy()\n    out[ref.mask] = sampled[ref.mask]\n",
          "    out = background.copy()\n"),),
        ("tests/evaluation/test_frontalize.py",),
    ),
    Mutation(
        "ssim_no_structure", "ssim ignores the structure term (luminance only)",
        "normface/evaluation/metrics.py",
        (("s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))",
          "s = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)"),),
        ("tests/evaluation/test_metrics.py",),
    ),
    Mutation(
        "docs_link_broken", "a README link names a docs page that does not exist",
        "README.md",
        (("[docs/testing.md](docs/testing.md): the suite", "[docs/testing.md](docs/testing-gone.md): the suite"),),
        ("tests/test_docs.py::test_every_relative_link_and_anchor_resolves",),
    ),
    Mutation(
        "docs_anchor_broken", "a README link names a heading that its page does not have",
        "README.md",
        (("(docs/serving.md#before-exposing-it)", "(docs/serving.md#before-exposing)"),),
        ("tests/test_docs.py::test_every_relative_link_and_anchor_resolves",),
    ),
    Mutation(
        "grid_wrong_lattice", "the grid measure counts the bins next to the period's lattice, not on it",
        "normface/evaluation/metrics.py",
        (("on_axis = index % (size // period) == 0", "on_axis = index % (size // period) == 1"),),
        (f"{METRICS}::test_grid_ratio_is_far_above_one_for_a_periodic_pattern_and_about_one_for_smooth_images",),
    ),
    Mutation(
        "sharpness_inverted", "the sharpness ratio divides the photo by the output",
        "normface/evaluation/metrics.py",
        (("return float(np.median(_ratios(_face_box_variances(outputs), _face_box_variances(photos))))",
          "return float(np.median(_ratios(_face_box_variances(photos), _face_box_variances(outputs))))"),),
        (f"{METRICS}::test_blurring_lowers_sharpness_and_identity_keeps_it",),
    ),
    Mutation(
        "matched_grid_unblurred", "the matched grid ratio compares the outputs with the unblurred photos",
        "normface/evaluation/metrics.py",
        (("    return blurred(sigma), sigma\n", "    return photos, sigma\n"),),
        (f"{METRICS}::test_blur_to_sharpness_finds_the_blur_that_gives_the_asked_sharpness",
         f"{METRICS}::test_the_matched_grid_ratio_counts_a_grid_and_not_a_blur"),
    ),
    Mutation(
        "matched_blur_bisects_backwards", "the matched blur's search moves away from the asked sharpness",
        "normface/evaluation/metrics.py",
        (("_face_box_variances(blurred(mid)), real)) > sharpness:", "_face_box_variances(blurred(mid)), real)) < sharpness:"),),
        (f"{METRICS}::test_blur_to_sharpness_finds_the_blur_that_gives_the_asked_sharpness",
         f"{METRICS}::test_the_matched_grid_ratio_counts_a_grid_and_not_a_blur"),
    ),
    Mutation(
        "hair_band_in_the_face", "the hair band includes the face inside the landmark hull",
        "normface/evaluation/metrics.py",
        (("return (~inside) & (distance > HAIR_BAND_GAP_PX)", "return (distance > HAIR_BAND_GAP_PX) | inside"),),
        (f"{METRICS}::test_hair_band_is_above_the_nose_and_outside_the_hull",
         f"{METRICS}::test_blurring_lowers_sharpness_and_identity_keeps_it"),
    ),
    Mutation(
        "distinctiveness_same_people", "distinctiveness averages the cosines of the same people, not of different ones",
        "normface/evaluation/metrics.py",
        (("other = people[:, None] != people[None, :]", "other = people[:, None] == people[None, :]"),),
        (f"{METRICS}::test_distinctiveness_is_maximal_for_identical_outputs",),
    ),
    Mutation(
        "balanced_is_all_pairs", "person-balanced TAR weighs every genuine pair the same",
        "normface/evaluation/metrics.py",
        (("return 1.0 / counts[inverse]", "return np.ones(len(inverse))"),),
        (f"{METRICS}::test_similarity_far_threshold_and_person_balanced_rate",
         "tests/evaluation/test_protocol.py::test_judge_identity_table_known_answers"),
    ),
    Mutation(
        "judge_picks_the_worst", "the best-checkpoint rule keeps the judge's worst checkpoint",
        "normface/training/checkpoints.py",
        (("return metrics[JUDGE_SCORE] + 1e-3", "return -metrics[JUDGE_SCORE] + 1e-3"),),
        ("tests/training/test_judge_selection.py::test_the_judge_chooses_the_best_checkpoint_over_the_training_encoder",),
    ),
    Mutation(
        "judge_in_the_loss", "the judge's validation score leaks into training (the learning rate follows it)",
        "normface/training/trainer.py",
        (('metrics.update({f"{JUDGE_PREFIX}{k}": float(v) for k, v in self.scorer(self.net.model).items()})',
          'metrics.update({f"{JUDGE_PREFIX}{k}": float(v) for k, v in self.scorer(self.net.model).items()}); '
          'self.optimizer.learning_rate.assign(self.optimizer.learning_rate * (1 + sum(metrics[k] for k in metrics if k.startswith(JUDGE_PREFIX))))'),),
        ("tests/training/test_judge_selection.py::test_the_judge_cannot_change_training",),
    ),
    Mutation(
        "perceptual_sign", "the perceptual term enters the training loss with the wrong sign",
        "normface/training/trainer.py",
        (('total += cfg.perceptual_weight * terms["perceptual"]', 'total -= cfg.perceptual_weight * terms["perceptual"]'),),
        (f"{TRAINING}::test_each_loss_term_decreases_on_its_own[perceptual]",),
    ),
    Mutation(
        "lattice_sign", "the lattice (grid) terms enter the training loss with the wrong sign",
        "normface/training/trainer.py",
        (("                    total += weight * terms[name]", "                    total -= weight * terms[name]"),),
        (f"{TRAINING}::test_each_loss_term_decreases_on_its_own[lattice]",
         f"{TRAINING}::test_each_loss_term_decreases_on_its_own[lattice2]"),
    ),
    Mutation(
        "detail_sign", "the detail term enters the training loss with the wrong sign",
        "normface/training/trainer.py",
        (('total += cfg.detail_weight * terms["detail"]', 'total -= cfg.detail_weight * terms["detail"]'),),
        (f"{TRAINING}::test_each_loss_term_decreases_on_its_own[detail]",),
    ),
    Mutation(
        "detail_compares_pixels", "the detail loss compares the band-passed pixels, not their local amplitude",
        "normface/training/losses.py",
        (("            return [tf.sqrt(gaussian_blur(tf.square(fine - coarse), window_sigma) + 1e-8)",
          "            return [gaussian_blur(fine - coarse, window_sigma)"),),
        ("tests/training/test_losses.py::test_detail_mismatch_asks_how_much_detail_where_not_its_phase",),
    ),
    Mutation(
        "detail_quantile_reversed", "the detail quantile weighs excess detail as it should weigh missing detail",
        "normface/training/losses.py",
        (("        diffs = [2.0 * tf.maximum(quantile * m, (quantile - 1.0) * m) for m in missing]",
          "        diffs = [2.0 * tf.maximum((1.0 - quantile) * m, -quantile * m) for m in missing]"),),
        ("tests/training/test_losses.py::test_detail_quantile_weighs_missing_detail_against_excess",),
    ),
    Mutation(
        "spectrum_sign", "the spectrum term enters the training loss with the wrong sign",
        "normface/training/trainer.py",
        (('total += cfg.spectrum_weight * terms["spectrum"]', 'total -= cfg.spectrum_weight * terms["spectrum"]'),),
        (f"{TRAINING}::test_each_loss_term_decreases_on_its_own[spectrum]",),
    ),
    Mutation(
        "spectrum_one_sided", "the spectrum loss counts missing energy only, not energy the target lacks",
        "normface/training/losses.py",
        (("        return tf.reduce_mean(tf.abs(log_rings(outputs) - log_rings(targets)), axis=-1)",
          "        return tf.reduce_mean(tf.nn.relu(log_rings(targets) - log_rings(outputs)), axis=-1)"),),
        ("tests/training/test_losses.py::test_spectrum_mismatch_asks_each_ring_for_its_energy_whatever_the_phase",),
    ),
    Mutation(
        "spectrum_phase", "the spectrum loss compares the pixels' band, phase and all, not each ring's energy",
        "normface/training/losses.py",
        (("            power = tf.reshape(_windowed_power(images, k), [-1, size * size]) / float(size ** 4)",
          "            power = tf.reshape(tf.image.resize(images, [size, size])[..., 0], [-1, size * size]) + 1.0"),),
        ("tests/training/test_losses.py::test_spectrum_mismatch_asks_each_ring_for_its_energy_whatever_the_phase",),
    ),
    Mutation(
        "detail_quantile_region_ignored", "the face-only detail quantile applies over the whole frame",
        "normface/training/trainer.py",
        (("    return (0.5 + (q - 0.5) * face).astype(np.float32)",
          "    return (q + 0.0 * face).astype(np.float32)"),),
        (f"{TRAINING}::test_detail_quantile_region_face_asks_the_quantile_inside_the_face_only",),
    ),
    Mutation(
        "detail_quantile_map_flattened", "the detail loss takes a quantile map's mean for every pixel",
        "normface/training/losses.py",
        (("        q = q[None, :, :, None]", "        q = np.full((1, 1, 1, 1), q.mean(), np.float32)"),),
        ("tests/training/test_losses.py::test_detail_quantile_weighs_missing_detail_against_excess",),
    ),
    Mutation(
        "lattice2_period_ignored", "the second lattice term reads the first one's period",
        "normface/training/trainer.py",
        (('("lattice2", cfg.lattice2_weight, cfg.lattice2_period)', '("lattice2", cfg.lattice2_weight, cfg.lattice_period)'),),
        (f"{TRAINING}::test_second_lattice_term_is_the_lattice_loss_on_its_own_period",),
    ),
    Mutation(
        "geometry_lattice_sign", "the geometry lattice term enters the training loss with the wrong sign",
        "normface/training/trainer.py",
        (('total += cfg.geometry_lattice_weight * terms["geometry_lattice"]',
          'total -= cfg.geometry_lattice_weight * terms["geometry_lattice"]'),),
        (f"{TRAINING}::test_each_loss_term_decreases_on_its_own[geometry_lattice]",),
    ),
    Mutation(
        "geometry_lattice_at_mean", "the geometry lattice places the textures on the mean landmarks, not the predicted ones",
        "normface/training/trainer.py",
        (("placed_target, placed_out = self._placed([target, out[key]], out[LANDMARKS])",
          "placed_target, placed_out = self._placed([target, out[key]], 0 * out[LANDMARKS] + self.mean_landmarks)"),),
        (f"{TRAINING}::test_geometry_lattice_is_the_lattice_loss_on_textures_placed_at_the_predicted_landmarks",),
    ),
    Mutation(
        "geometry_lattice_moves_landmarks", "the geometry lattice's gradient reaches the landmarks",
        "normface/training/trainer.py",
        (("landmarks = tf.tile(tf.stop_gradient(tf.cast(landmarks, tf.float32)), [len(textures), 1, 1])",
          "landmarks = tf.tile(tf.cast(landmarks, tf.float32), [len(textures), 1, 1])"),),
        (f"{TRAINING}::test_geometry_lattice_is_the_lattice_loss_on_textures_placed_at_the_predicted_landmarks",),
    ),
    Mutation(
        "grid_geometry_reference_ignored", "the geometry-matched grid ratio is taken against the plain photos",
        "normface/evaluation/metrics.py",
        (("geometry = {p: grid_ratio(outputs, photos_at_output_geometry, p) for p in GRID_PERIODS}",
          "geometry = {p: grid_ratio(outputs, photos, p) for p in GRID_PERIODS}"),),
        (f"{METRICS}::test_the_geometry_matched_grid_ratio_takes_the_faces_proportions_out_and_keeps_a_grid",),
    ),
    Mutation(
        "photos_at_geometry_unmoved", "the geometry reference leaves each photo on its own landmarks",
        "normface/evaluation/recipe.py",
        (("decompose.warp_faces(np.asarray(photos, np.float32) / 255.0, photo_landmarks, landmarks,",
          "decompose.warp_faces(np.asarray(photos, np.float32) / 255.0, photo_landmarks, photo_landmarks,"),),
        ("tests/evaluation/test_recipe.py::test_photos_at_geometry_moves_each_photo_onto_its_outputs_landmarks",),
    ),
    Mutation(
        "landmark_spread_sign", "the landmark spread term enters the training loss with the wrong sign",
        "normface/training/trainer.py",
        (('total += cfg.landmark_spread_weight * terms["landmark_spread"]',
          'total -= cfg.landmark_spread_weight * terms["landmark_spread"]'),),
        (f"{TRAINING}::test_each_loss_term_decreases_on_its_own[landmark_spread]",),
    ),
    Mutation(
        "landmark_spread_about_zero", "the landmark spread is measured about zero, not about the batch's mean",
        "normface/training/losses.py",
        (("return tf.sqrt(tf.math.reduce_variance(x / float(image_size), axis=0) + 1e-12)",
          "return tf.sqrt(tf.reduce_mean(tf.square(x / float(image_size)), axis=0) + 1e-12)"),),
        ("tests/training/test_losses.py::test_landmark_spread_asks_the_batch_to_spread_as_its_targets_do",),
    ),
    Mutation(
        "identity_relation_sign", "the identity relation term enters the training loss with the wrong sign",
        "normface/training/trainer.py",
        (('total += cfg.identity_relation_weight * terms["identity_relation"]',
          'total -= cfg.identity_relation_weight * terms["identity_relation"]'),),
        (f"{TRAINING}::test_each_loss_term_decreases_on_its_own[identity_relation]",),
    ),
    Mutation(
        "identity_relation_to_mean_distance", "the identity relation compares each output distance with the photos' mean distance",
        "normface/training/losses.py",
        (("off_diagonal * tf.square(distances(y_pred) - distances(y_true))",
          "off_diagonal * tf.square(distances(y_pred) - tf.reduce_mean(distances(y_true)))"),),
        ("tests/training/test_losses.py::test_descriptor_relation_asks_outputs_to_lie_as_far_apart_as_their_photos",),
    ),
    Mutation(
        "identity_relation_on_inputs", "the trainer's identity relation compares the outputs' descriptors with themselves",
        "normface/training/trainer.py",
        (("relation = losses.descriptor_relation_mismatch(batch[schema.DESCRIPTOR], generated)",
          "relation = losses.descriptor_relation_mismatch(generated, generated)"),),
        (f"{TRAINING}::test_identity_relation_alone_is_the_distance_mismatch_of_the_batchs_descriptors",),
    ),
    Mutation(
        "texture_spread_sign", "the texture spread term enters the training loss with the wrong sign",
        "normface/training/trainer.py",
        (('total += cfg.texture_spread_weight * terms["texture_spread"]',
          'total -= cfg.texture_spread_weight * terms["texture_spread"]'),),
        (f"{TRAINING}::test_each_loss_term_decreases_on_its_own[texture_spread]",),
    ),
    Mutation(
        "texture_spread_weights_ignored", "the trainer's texture spread counts the background as the face",
        "normface/training/trainer.py",
        (("spread = losses.texture_spread_mismatch(target, out[key], pixel_weights=self.face_mask)",
          "spread = losses.texture_spread_mismatch(target, out[key])"),),
        (f"{TRAINING}::test_texture_spread_is_taken_inside_the_face_and_hair[texture_spread-texture_spread_mismatch]",),
    ),
    Mutation(
        "texture_deviation_sign", "the texture deviation term enters the training loss with the wrong sign",
        "normface/training/trainer.py",
        (('total += cfg.texture_deviation_weight * terms["texture_deviation"]',
          'total -= cfg.texture_deviation_weight * terms["texture_deviation"]'),),
        (f"{TRAINING}::test_each_loss_term_decreases_on_its_own[texture_deviation]",),
    ),
    Mutation(
        "texture_deviation_weights_ignored", "the trainer's texture deviation counts the background as the face",
        "normface/training/trainer.py",
        (("losses.texture_deviation_mismatch(target, out[key], pixel_weights=self.face_mask))",
          "losses.texture_deviation_mismatch(target, out[key]))"),),
        (f"{TRAINING}::test_texture_spread_is_taken_inside_the_face_and_hair[texture_deviation-texture_deviation_mismatch]",),
    ),
    Mutation(
        "texture_deviation_about_zero", "each texture's deviation is measured from zero, not from the batch's mean",
        "normface/training/losses.py",
        (("deviation = x - tf.reduce_mean(x, axis=0, keepdims=True)", "deviation = x"),),
        ("tests/training/test_losses.py::test_texture_deviation_asks_each_face_to_stand_as_far_from_the_mean_as_its_target",),
    ),
    Mutation(
        "target_exaggeration_about_zero", "the targets are exaggerated about zero, not about the batch's mean target",
        "normface/training/trainer.py",
        (("deviation = target - tf.reduce_mean(target, axis=0, keepdims=True)", "deviation = target"),),
        (f"{TRAINING}::test_target_exaggeration_scales_each_targets_deviation_inside_the_face",),
    ),
    Mutation(
        "target_exaggeration_sigma_ignored", "the whole deviation is exaggerated when only its low-pass should be",
        "normface/training/trainer.py",
        (("deviation = gaussian_blur(deviation, self.config.target_exaggeration_sigma)", "pass"),),
        (f"{TRAINING}::test_target_exaggeration_sigma_scales_only_the_deviations_coarse_part",),
    ),
    Mutation(
        "perceptual_exaggeration_ignored", "exaggerate_perceptual leaves the perceptual term's photo as it is",
        "normface/training/trainer.py",
        (("return tf.cast(photo, tf.float32) + exaggeration", "return tf.cast(photo, tf.float32)"),),
        (f"{TRAINING}::test_exaggerate_perceptual_gives_the_perceptual_term_the_photo_plus_the_placed_exaggeration",),
    ),
    Mutation(
        "perceptual_exaggeration_unplaced", "the exaggeration is added to the photo in the texture frame, not placed on its landmarks",
        "normface/training/trainer.py",
        (("(exaggeration,) = self._placed([exaggeration], batch[schema.LANDMARKS])", "pass"),),
        (f"{TRAINING}::test_exaggerate_perceptual_gives_the_perceptual_term_the_photo_plus_the_placed_exaggeration",),
    ),
    Mutation(
        "strip_channels_swapped", "a committed row strip is read back in BGR order",
        "experiments/picture_ablation.py",
        (("tiles[name] = pictures.grid_tiles(image[..., ::-1], cols, SHEET_TILE)",
          "tiles[name] = pictures.grid_tiles(image, cols, SHEET_TILE)"),),
        ("tests/evaluation/test_recipe.py::test_picture_ablation_reads_back_each_rows_strip",),
    ),
    Mutation(
        "texture_spread_about_zero", "the texture spread is measured about zero, not about the batch's mean face",
        "normface/training/losses.py",
        (("return tf.sqrt(tf.math.reduce_variance(x, axis=0) + 1e-8)",
          "return tf.sqrt(tf.reduce_mean(tf.square(x), axis=0) + 1e-8)"),),
        ("tests/training/test_losses.py::test_texture_spread_asks_the_batch_to_vary_as_its_targets_do",),
    ),
    Mutation(
        "resume_missing_option_differs", "a resumed run's config lacking a newer option counts as changed",
        "normface/training/trainer.py",
        (('            old_train = {**TrainConfig().to_dict(), **old.get("train", {})}',
          '            old_train = old.get("train", {})'),),
        (f"{TRAINING}::test_resume_reads_an_option_an_older_run_lacks_as_its_default",),
    ),
    Mutation(
        "lattice_counts_deficit", "the lattice loss counts the target's grid instead of the output's",
        "normface/training/losses.py",
        (("excess = tf.nn.relu(amplitude(outputs) - amplitude(targets)) * not_dc",
          "excess = tf.nn.relu(amplitude(targets) - amplitude(outputs)) * not_dc"),),
        ("tests/training/test_losses.py::test_lattice_excess_counts_a_grid_the_target_does_not_have",),
    ),
    Mutation(
        "morph_keep_drops_originals", "thinning the morphs drops the original faces with them",
        "normface/data/pipeline.py",
        (("return tf.logical_or(tf.logical_not(morphed), coin < keep)", "return coin < keep"),),
        ("tests/data/test_records.py::test_morph_keep_thins_morphs_and_keeps_every_original",),
    ),
    Mutation(
        "cubic_weights_mirrored", "the bicubic sampler weighs its taps in the wrong order",
        "normface/warp/numpy_warp.py",
        (("return 0.5 * np.stack([-f3 + 2 * f2 - f, 3 * f3 - 5 * f2 + 2, -3 * f3 + 4 * f2 + f, f3 - f2], axis=-1)",
          "return 0.5 * np.stack([f3 - f2, -3 * f3 + 4 * f2 + f, 3 * f3 - 5 * f2 + 2, -f3 + 2 * f2 - f], axis=-1)"),),
        ("tests/warp/test_bicubic.py::test_weights_by_hand_and_exact_on_pixels_and_quadratics",),
    ),
    Mutation(
        "warp_ignores_resampling", "the TensorFlow warp samples bilinearly whatever it is asked",
        "normface/warp/sparse.py",
        (("warped = warp_with_flow(image, dense_flow, resampling)", "warped = warp_with_flow(image, dense_flow)"),),
        ("tests/warp/test_bicubic.py::test_the_warp_layer_resamples_bicubic_and_keeps_more_detail",),
    ),
    Mutation(
        "litert_ignores_resampling", "the LiteRT path warps bilinearly whatever the model config says",
        "normface/serving/litert_backend.py",
        (('self.resampling = str(config.get("warp_resampling", "bilinear"))', 'self.resampling = "bilinear"'),),
        ("tests/serving/test_litert_backend.py::test_the_numpy_warp_resamples_as_the_model_config_says",),
    ),
    Mutation(
        "litert_body_drops_the_refiner", "the LiteRT decoder body ends at the RGB layer, without the refiner",
        "normface/serving/litert_export.py",
        (('after_grid = keras.Model(texture_net.get_layer("grid").output, texture_net.output)',
          'after_grid = keras.Model(texture_net.get_layer("grid").output, texture_net.get_layer("to_rgb").output)'),),
        ("tests/serving/test_litert_backend.py::test_ship_model_writes_litert_files_equal_to_tensorflow",),
    ),
    Mutation(
        "refiner_unwired", "the refiner's correction never reaches the texture",
        "normface/models/decoders.py",
        (('rgb = keras.layers.Add(name="refined", dtype="float32")([rgb, correction])',
          'rgb = keras.layers.Add(name="refined", dtype="float32")([rgb, 0.0 * correction])'),),
        ("tests/training/test_recipe_losses.py::test_a_refiner_warm_started_from_an_unrefined_donor_starts_at_the_donors_output",),
    ),
    Mutation(
        "adversarial_sign", "the generator's adversarial term enters the training loss with the wrong sign",
        "normface/training/trainer.py",
        (('total += cfg.adversarial_weight * terms["adversarial"]', 'total -= cfg.adversarial_weight * terms["adversarial"]'),),
        (f"{TRAINING}::test_each_loss_term_decreases_on_its_own[adversarial]",),
    ),
    Mutation(
        "feature_matching_sign", "discriminator feature matching enters the training loss with the wrong sign",
        "normface/training/trainer.py",
        (('total += cfg.feature_matching_weight * terms["feature_matching"]',
          'total -= cfg.feature_matching_weight * terms["feature_matching"]'),),
        (f"{TRAINING}::test_each_loss_term_decreases_on_its_own[feature_matching]",),
    ),
    Mutation(
        "calm_background_off", "the calm-background target keeps the cluttered background",
        "normface/training/trainer.py",
        (("target = mask * target + (1.0 - mask) * gaussian_blur(target, sigma)", "target = target"),),
        ("tests/training/test_recipe_losses.py::test_calm_background_target_keeps_the_face_and_blurs_the_rest",),
    ),
    Mutation(
        "pixel_weights_ignored", "the face-weighted texture loss ignores its weights",
        "normface/training/losses.py",
        (("                error = error * self.pixel_weights", "                error = error * 1.0"),),
        ("tests/training/test_recipe_losses.py::test_pixel_weighted_texture_l1",),
    ),
    Mutation(
        "batch_stages_in_turn", "a batch run's networks wait for every photo's detection (no overlap)",
        "normface/serving/batch_files.py",
        (("            if count >= self.options.batch_size:\n", "            if count >= len(self.files):\n"),),
        ("tests/serving/test_batch_pipeline.py::test_stages_overlap_and_outcomes_come_in_input_order",),
    ),
    Mutation(
        "batch_out_of_order", "a batch run hands a batch's inputs on in reverse order",
        "normface/serving/batch_files.py",
        (("            o.faces = None  # the aligned photos are in the results; free the rest\n        return group\n",
          "            o.faces = None  # the aligned photos are in the results; free the rest\n        return group[::-1]\n"),),
        ("tests/serving/test_batch_pipeline.py::test_stages_overlap_and_outcomes_come_in_input_order",
         "tests/serving/test_batch_pipeline.py::test_on_litert_two_batches_run_through_the_networks_at_once_and_keep_input_order"),
    ),
    Mutation(
        "batch_deaf_to_ctrl_c", "a batch run's caller waits for a batch without waking for a signal",
        "normface/serving/batch_files.py",
        (("            return wait(timeout=0.1)\n", "            return wait()\n"),),
        ("tests/serving/test_batch_pipeline.py::test_ctrl_c_while_waiting_for_the_networks_stops_every_stage",),
    ),
    Mutation(
        "batch_one_network_worker", "a batch run on LiteRT runs one batch through the networks at a time",
        "normface/serving/batch_files.py",
        (("    return 2 if getattr(normalizer", "    return 1 if getattr(normalizer"),),
        ("tests/serving/test_batch_pipeline.py::test_on_litert_two_batches_run_through_the_networks_at_once_and_keep_input_order",),
    ),
    Mutation(
        "batch_ctrl_c_runs_on", "Ctrl-C in a batch run leaves the detection and network stages running",
        "normface/serving/batch_files.py",
        (("        self.stop.set()\n        for thread in self.threads:", "        for thread in self.threads:"),),
        ("tests/serving/test_batch_pipeline.py::test_ctrl_c_while_waiting_for_the_networks_stops_every_stage",),
    ),
    Mutation(
        "fingerprint_without_backend", "the run manifest's key ignores the backend (a resumed run mixes both)",
        "normface/serving/normalizer.py",
        (('        digest.update(f"backend\\0{backend}\\0".encode())\n', "        pass\n"),),
        ("tests/serving/test_litert_backend.py::test_a_run_resumed_on_the_other_backend_redoes_its_inputs",),
    ),
    Mutation(
        "merge_decodes_on_tensorflow", "merge and morph decode on TensorFlow even for a LiteRT normalizer",
        "normface/serving/merge.py",
        (('    if getattr(normalizer, "backend", None) is not None:\n', "    if False:\n"),),
        ("tests/serving/test_merge.py::test_merge_and_morph_on_litert_equal_tensorflow_without_loading_it",),
    ),
    Mutation(
        "equality_ignores_landmarks", "the LiteRT-against-TensorFlow comparison passes whatever the landmarks",
        "normface/evaluation/backends.py",
        (('and out["landmarks_px"]["max"] <= LANDMARK_LIMIT)', ")"),),
        ("tests/evaluation/test_backends.py::test_compare_measures_grey_levels_and_landmarks",),
    ),
    Mutation(
        "serve_needs_tensorflow", "serve imports the avatar (TensorFlow) even when TensorFlow is not installed",
        "normface/cli/serve.py",
        (("    if not tensorflow_installed():\n", "    if False:\n"),),
        ("tests/test_without_tensorflow.py::test_inference_runs_and_the_rest_names_the_train_extra",),
    ),
    Mutation(
        "tensorflow_missing_unnamed", "a command that needs TensorFlow fails without saying which extra or why",
        "normface/cli/common.py",
        (("    if not tensorflow_installed():\n        raise CommandError(missing_tensorflow(needed_for))\n", ""),),
        ("tests/test_without_tensorflow.py::test_inference_runs_and_the_rest_names_the_train_extra",),
    ),
    Mutation(
        "apps_import_the_avatar", "normface.apps imports the avatar (TensorFlow) for the white balance too",
        "normface/apps/__init__.py",
        (("_EXPORTS = {", "from normface.apps.avatar import make_avatar  # noqa: E402,F401\n_EXPORTS = {"),),
        ("tests/test_without_tensorflow.py::test_inference_runs_and_the_rest_names_the_train_extra",),
    ),
    Mutation(
        "merge_threshold_via_tensorflow", "merge reads the same-person threshold from the TensorFlow module",
        "normface/serving/merge.py",
        (("from normface.encoders.threshold import SAME_PERSON_THRESHOLD", "from normface.encoders.similarity import SAME_PERSON_THRESHOLD"),),
        ("tests/test_without_tensorflow.py::test_inference_runs_and_the_rest_names_the_train_extra",),
    ),
    Mutation(
        "no_train_extra_hint", "a program dying for want of TensorFlow does not name the extra",
        "normface/__init__.py",
        (("            print(TRAIN_EXTRA_HINT, file=sys.stderr)\n", "            pass\n"),),
        ("tests/test_without_tensorflow.py::test_a_program_that_needs_tensorflow_names_the_train_extra",),
    ),
    Mutation(
        "body_chunks_overlap", "the decoder's body files decode overlapping chunks (a batch's faces shifted)",
        "normface/serving/litert_backend.py",
        (("            start = stop\n", "            start = max(stop - 1, start)\n"),),
        ("tests/serving/test_litert_backend.py::test_a_batch_decodes_as_its_faces_one_at_a_time",),
    ),
    Mutation(
        "grid_spline_drops_a_term", "the spline on a pixel grid forgets the columns' affine term",
        "normface/warp/numpy_warp.py",
        (("+ cols[None, :, None] * self.v[1]  # [h, w, k]", "  # [h, w, k]"),),
        ("tests/warp/test_numpy_warp.py::test_spline_on_a_grid_equals_the_spline_at_its_pixels",),
    ),
    Mutation(
        "bilinear_flat_index_transposed", "bilinear sampling steps a row where it should step a column",
        "normface/warp/numpy_warp.py",
        (("flat.take(corner + 1, axis=0)", "flat.take(corner + w, axis=0)"),),
        ("tests/warp/test_numpy_warp.py::test_bilinear_sampling_by_flat_index_equals_the_formula",),
    ),
    Mutation(
        "serve_imports_the_avatar_at_start", "normface serve imports the avatar (TensorFlow) before its first request",
        "normface/cli/serve.py",
        (("    def avatar_bytes(image, landmarks, fmt: str) -> bytes:\n",
          "    from normface.apps import avatar  # noqa: F401\n\n    def avatar_bytes(image, landmarks, fmt: str) -> bytes:\n"),),
        ("tests/serving/test_http_api.py::test_the_server_imports_tensorflow_at_the_first_avatar_not_at_start",),
    ),
)
BY_NAME = {m.name: m for m in MUTATIONS}


def copy_tree(dest: Path) -> None:
    """The working tree's tracked and untracked, not ignored, files (what ``git status`` sees)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def child_env(copy: Path) -> dict[str, str]:
    from normface.utils import paths

    env = dict(os.environ, PYTHONPATH=str(copy), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               NORMFACE_CACHE=str(copy.parent / "cache"))  # the converted encoder, shared by the runs
    # The copy lives elsewhere: point it at this checkout's data and golden fixtures.
    data = paths.data_dir()
    env.setdefault(paths.DATA_ENV, str(data))
    env.setdefault("NORMFACE_FIXTURES", str(data.parent / "fixtures"))
    env.pop("TF_CONFIG", None)
    return env


def run_pytest(copy: Path, tests: tuple[str, ...], timeout: int) -> tuple[int, str, float]:
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", *tests],
                              cwd=copy, env=child_env(copy), capture_output=True, text=True, timeout=timeout)
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        code, out = -1, f"timed out after {timeout} s\n{err.stdout or ''}"
    return code, out, time.perf_counter() - start


def summary_line(output: str) -> str:
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|error|skipped)", line)]
    return lines[-1].strip("= ") if lines else output.strip().splitlines()[-1] if output.strip() else "(no output)"


def failed_tests(output: str) -> list[str]:
    """pytest's short summary lines of the failed tests: ``<node id> - <first line of the error>``."""
    return [line[len("FAILED "):] for line in output.splitlines() if line.startswith("FAILED ")]


def apply(copy: Path, mutation: Mutation) -> str:
    """Applies the edits in the copy; returns the original text (to restore)."""
    path = copy / mutation.path
    original = text = path.read_text()
    for old, new in mutation.edits:
        count = text.count(old)
        if count != 1:
            raise RuntimeError(f"{mutation.name}: expected the text once in {mutation.path}, found it {count} "
                               f"times (the code moved: update tests/mutation_smoke.py): {old!r}")
        text = text.replace(old, new)
    path.write_text(text)
    return original


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BY_NAME), help="run only these breakages")
    parser.add_argument("--list", action="store_true", help="list the breakages and their tests")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmodified run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per pytest run")
    args = parser.parse_args(argv)
    chosen = [BY_NAME[n] for n in args.only] if args.only else list(MUTATIONS)
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.what} ({m.path})\n    " + "\n    ".join(m.tests))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="normface-mutation-"))
    copy = tmp / "repo"
    ok = True
    try:
        copy_tree(copy)
        print(f"copy of {REPO} in {copy}", flush=True)
        if not args.no_baseline:
            tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
            code, out, seconds = run_pytest(copy, tests, args.timeout)
            skipped = re.search(r"(\d+) skipped", summary_line(out))
            good = code == 0 and not skipped
            print(f"baseline (unmodified copy): {'ok' if good else 'FAILED'}: {summary_line(out)} [{seconds:.0f} s]",
                  flush=True)
            if not good:
                print(out[-4000:])
                return 1
        for m in chosen:
            original = apply(copy, m)
            try:
                code, out, seconds = run_pytest(copy, m.tests, args.timeout)
            finally:
                (copy / m.path).write_text(original)
            failed = failed_tests(out)
            caught = code == 1 and bool(failed)
            ok &= caught
            print(f"{m.name}: {m.what}: {'caught' if caught else 'NOT CAUGHT'}: {summary_line(out)} [{seconds:.0f} s]",
                  flush=True)
            for line in failed:
                print(f"    failed: {line[:200]}")
            if not caught:
                print(out[-3000:])
    finally:
        if args.keep:
            print(f"kept {copy}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("every breakage caught" if ok else "SOME BREAKAGES WERE NOT CAUGHT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
