"""python -m lib.summary: parameters and FLOPs per part."""

from __future__ import annotations

from lib.summary import PARTS, build_on_meta, count_flops, count_parameters, main


def test_parts_add_up_to_the_whole_model():
    model = build_on_meta()
    params = count_parameters(model)
    assert params["total"] == 109_083_218
    assert sum(params[name] for name, _ in PARTS) == params["total"]
    flops = count_flops(model, 64, 96)
    assert sum(flops[name] for name, _ in PARTS) == flops["total"] > 0


def test_head_flops_match_a_hand_count():
    # Per output pixel of each level: conv_up 3×3 64→64 and conv_out 3×3 64→1, 2 FLOPs
    # per multiply-add. The levels are at H/2, H/4, H/8, H/16 after the ×2 upsampling.
    h, w = 64, 96
    per_pixel = 2 * 9 * 64 * (64 + 1)
    pixels = sum((h // s) * (w // s) for s in (2, 4, 8, 16))
    assert count_flops(build_on_meta(backbone="pvt_v2_b0"), h, w)["head"] == per_pixel * pixels


def test_command_prints_the_table(capsys):
    main(["--size", "64", "--backbone", "pvt_v2_b0"])
    out = capsys.readouterr().out
    assert "GFLOPs @ 64x64" in out and "CSFM" in out and "total" in out
