"""deploykit.ir: safe import (loader), opset upgrade and tensor specs, one level below the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import modelzoo
from deploykit.errors import DeployError, ModelError
from deploykit.ir import graph_inputs, graph_outputs, load_model, load_proto, opset_version, parse_input_shapes, upgrade_opset
from deploykit.ir.info import TensorSpec

pytestmark = pytest.mark.unit


# --------------------------------------------------------------------------- helpers
def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def _matmul_model(*, x_shape=(1, 4), w=None, ir_version=None, opset=17) -> onnx.ModelProto:
    """y = x @ W with a 4x3 weight initializer (big enough for external data with size_threshold=0)."""
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 7.0 if w is None else w
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [x_shape[0], w.shape[1]])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if ir_version is not None:
        model.ir_version = ir_version
    return model


def _dynamic_model(path: Path) -> Path:
    """Two inputs: 'img' [N, 3, H, W] (named dims) and 'aux' [?, 5] (unnamed dim)."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["img"], ["s"], name="r"),
         helper.make_node("Identity", ["aux"], ["a"], name="i")], "dyn",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, ["N", 3, "H", "W"]),
         helper.make_tensor_value_info("aux", TensorProto.FLOAT, [None, 5])],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["N", 3, "H", "W"]),
         helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 5])],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _with_external_data(model: onnx.ModelProto, folder: Path, location: str) -> Path:
    """Save ``model`` into ``folder`` with every tensor stored in ``location`` (relative to folder)."""
    (folder / location).parent.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return path


def _relocate_external_data(path: Path, new_location: str) -> None:
    """Rewrite every external-data ``location`` entry of the model file at ``path``."""
    proto = onnx.load(str(path), load_external_data=False)
    for t in proto.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = new_location
    path.write_bytes(proto.SerializeToString())


# --------------------------------------------------------------------------- parse_input_shapes
@pytest.mark.parametrize(
    "specs, expected",
    [
        (None, {}),
        ([], {}),
        (["x:1,3,224,224"], {"x": [1, 3, 224, 224]}),
        (["  x:1  "], {"x": [1]}),
        (["a:1,2", "b:3"], {"a": [1, 2], "b": [3]}),
        (["gpu_0/data_0:1,3,8,8"], {"gpu_0/data_0": [1, 3, 8, 8]}),
        (["ns:in:1,2"], {"ns:in": [1, 2]}),  # the last ':' separates name and dims
        (["x:1,2", "x:1,2"], {"x": [1, 2]}),  # repeated with the same dims: harmless (different dims: an error)
    ],
)
def test_parse_input_shapes_good(specs, expected):
    assert parse_input_shapes(specs) == expected


@pytest.mark.parametrize("spec", ["x", "x:", ":1,2", "x:1,,2", "x:1,a", "x:1.5", "x 1,2", "x:1,2,", "x=1,2"])
def test_parse_input_shapes_malformed(spec):
    with pytest.raises(DeployError) as ei:
        parse_input_shapes([spec])
    assert "malformed --input-shape" in str(ei.value)
    assert "NAME:D0,D1" in str(ei.value)  # says how to write it


@pytest.mark.parametrize("spec", ["x:0,3", "x:1,-1", "x:-2"])
def test_parse_input_shapes_non_positive(spec):
    with pytest.raises(DeployError, match="positive"):
        parse_input_shapes([spec])


# --------------------------------------------------------------------------- unreadable files
def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope.onnx")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ModelError, match="is a folder"):
        load_model(tmp_path)


@pytest.mark.parametrize("content", [b"hello world, not a model\n" * 5, b"\x00\xff" * 64, b"\x08"])
def test_garbage_file(tmp_path, content):
    p = tmp_path / "garbage.onnx"
    p.write_bytes(content)
    with pytest.raises(ModelError, match="not (a readable ONNX|an ONNX) model"):
        load_model(p)


def test_empty_file_has_no_graph(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    with pytest.raises(ModelError, match="no graph found"):
        load_model(p)


def test_truncated_model_at_every_cut_is_a_model_error(tmp_path, cnn):
    data = cnn.read_bytes()
    p = tmp_path / "cut.onnx"
    for cut in range(1, len(data), max(1, len(data) // 97)):
        p.write_bytes(data[:cut])
        with pytest.raises(ModelError):
            load_model(p)


def test_checker_failure_names_the_problem(tmp_path):
    # a node whose input is never produced
    graph = helper.make_graph(
        [helper.make_node("Relu", ["nowhere"], ["y"], name="r")], "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    p = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "bad.onnx")
    with pytest.raises(ModelError) as ei:
        load_model(p)
    msg = str(ei.value)
    assert "fails the ONNX checker" in msg and "nowhere" in msg
    assert "\n" not in msg  # one line


def test_unknown_op_fails_the_checker(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"], name="n")], "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    p = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "bad.onnx")
    with pytest.raises(ModelError, match="fails the ONNX checker.*NoSuchOp"):
        load_model(p)


# --------------------------------------------------------------------------- ir_version
def test_ir_version_newer_than_onnx_is_a_model_error(tmp_path):
    p = _save(_matmul_model(ir_version=onnx.IR_VERSION + 5), tmp_path / "future.onnx")
    with pytest.raises(ModelError, match=r"ir_version"):
        load_model(p)


@pytest.mark.parametrize("ir_version", [4, 7, 8])
def test_older_ir_versions_load(tmp_path, ir_version):
    p = _save(_matmul_model(ir_version=ir_version, opset=11), tmp_path / "old.onnx")
    model = load_model(p)
    assert model.ir_version == ir_version
    assert [s.name for s in graph_inputs(model)] == ["x"]


# --------------------------------------------------------------------------- external data
def test_external_data_inside_folder_loads_with_right_values(tmp_path):
    w = np.linspace(-3, 3, 12, dtype=np.float32).reshape(4, 3)
    path = _with_external_data(_matmul_model(w=w), tmp_path / "m", "weights/w.bin")
    assert (tmp_path / "m" / "weights" / "w.bin").is_file()
    proto = load_proto(path)
    np.testing.assert_array_equal(numpy_helper.to_array(proto.graph.initializer[0]), w)
    model = load_model(path)
    np.testing.assert_array_equal(model.graph.initializers["W"].const_value.numpy(), w)


def test_external_data_relative_escape_is_refused(tmp_path):
    folder = tmp_path / "m"
    path = _with_external_data(_matmul_model(), folder, "w.bin")
    (tmp_path / "w.bin").write_bytes((folder / "w.bin").read_bytes())  # a real file outside
    _relocate_external_data(path, "../w.bin")
    with pytest.raises(ModelError, match="outside the model's folder") as ei:
        load_model(path)
    assert "'W'" in str(ei.value) and "../w.bin" in str(ei.value)


def test_external_data_absolute_path_is_refused_even_inside_the_folder(tmp_path):
    folder = tmp_path / "m"
    path = _with_external_data(_matmul_model(), folder, "w.bin")
    _relocate_external_data(path, str((folder / "w.bin").resolve()))
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_model(path)


def test_external_data_absolute_system_path_is_refused(tmp_path):
    path = _with_external_data(_matmul_model(), tmp_path / "m", "w.bin")
    _relocate_external_data(path, "/etc/passwd")
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_model(path)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_external_data_symlink_escaping_the_folder_is_refused(tmp_path):
    folder = tmp_path / "m"
    path = _with_external_data(_matmul_model(), folder, "w.bin")
    outside = tmp_path / "secret.bin"
    outside.write_bytes((folder / "w.bin").read_bytes())
    (folder / "w.bin").unlink()
    (folder / "w.bin").symlink_to(outside)
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_model(path)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_external_data_symlinked_subfolder_escaping_is_refused(tmp_path):
    folder = tmp_path / "m"
    path = _with_external_data(_matmul_model(), folder, "w.bin")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "w.bin").write_bytes((folder / "w.bin").read_bytes())
    (folder / "link").symlink_to(elsewhere, target_is_directory=True)
    _relocate_external_data(path, "link/w.bin")
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_model(path)


def test_external_data_missing_file(tmp_path):
    folder = tmp_path / "m"
    path = _with_external_data(_matmul_model(), folder, "w.bin")
    (folder / "w.bin").unlink()
    with pytest.raises(ModelError, match="external data file 'w.bin'.*missing"):
        load_model(path)


def test_external_data_short_file_is_a_model_error(tmp_path):
    folder = tmp_path / "m"
    path = _with_external_data(_matmul_model(), folder, "w.bin")
    (folder / "w.bin").write_bytes(b"\0" * 8)  # 48 bytes expected
    with pytest.raises(ModelError):
        load_model(path)


# --------------------------------------------------------------------------- dynamic dims
def test_dynamic_dims_message_lists_every_dim_and_suggests_flags(tmp_path):
    p = _dynamic_model(tmp_path / "dyn.onnx")
    with pytest.raises(DeployError) as ei:
        load_model(p)
    err = ei.value
    for part in ("'img' dim 0 ('N')", "'img' dim 2 ('H')", "'img' dim 3 ('W')", "'aux' dim 0"):
        assert part in err.message, err.message
    assert "'img' dim 1" not in err.message  # 3 is fixed
    assert "--input-shape img:1,3,N,N" in err.hint
    assert "--input-shape aux:1,5" in err.hint
    assert "\n" not in str(err)


def test_dynamic_dims_allowed_when_not_required(tmp_path):
    model = load_model(_dynamic_model(tmp_path / "dyn.onnx"), require_static=False)
    specs = {s.name: s for s in graph_inputs(model)}
    assert specs["img"].shape == [-1, 3, -1, -1]
    assert specs["aux"].shape == [-1, 5]


def test_pinning_makes_the_model_static(tmp_path):
    p = _dynamic_model(tmp_path / "dyn.onnx")
    model = load_model(p, {"img": [2, 3, 8, 6], "aux": [4, 5]})
    specs = {s.name: s for s in graph_inputs(model)}
    assert specs["img"].shape == [2, 3, 8, 6] and specs["img"].layout == "NCHW"
    assert specs["aux"].shape == [4, 5] and specs["aux"].layout == "ND"
    # shape inference ran after pinning and replaced the symbolic output dims
    assert [s.shape for s in graph_outputs(model)] == [[2, 3, 8, 6], [4, 5]]


def test_partial_pinning_still_reports_the_rest(tmp_path):
    p = _dynamic_model(tmp_path / "dyn.onnx")
    with pytest.raises(DeployError) as ei:
        load_model(p, {"img": [1, 3, 8, 8]})
    assert "'aux' dim 0" in ei.value.message and "img" not in ei.value.message
    assert ei.value.hint == "pin them, e.g. --input-shape aux:1,5"


def test_pinning_batch_of_a_fixed_model_with_same_dims_is_fine(tmp_path, cnn):
    model = load_model(cnn, {"image": [1, 3, 16, 16]})
    assert graph_inputs(model)[0].shape == [1, 3, 16, 16]


def test_pinning_rank_mismatch(tmp_path):
    p = _dynamic_model(tmp_path / "dyn.onnx")
    with pytest.raises(DeployError, match=r"has rank 3 but input 'img' has rank 4"):
        load_model(p, {"img": [1, 3, 8]})


def test_pinning_conflicts_with_fixed_dims(tmp_path, cnn):
    with pytest.raises(DeployError, match=r"conflicts with the model's fixed shape \[1, 3, 16, 16\]"):
        load_model(cnn, {"image": [1, 3, 32, 32]})


def test_pinning_unknown_input_lists_the_real_ones(tmp_path):
    p = _dynamic_model(tmp_path / "dyn.onnx")
    with pytest.raises(DeployError, match=r"'imgs', which is not a model input \(inputs: 'img', 'aux'\)"):
        load_model(p, {"imgs": [1, 3, 8, 8]})


# --------------------------------------------------------------------------- initializers listed as inputs
def test_initializer_inputs_are_dropped_from_light_models():
    path = modelzoo.LIGHT_DIR / "light_squeezenet.onnx"
    raw = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in raw.graph.initializer}
    assert raw.ir_version == 3 and len([i for i in raw.graph.input if i.name in inits]) > 1
    model = load_model(path)
    specs = graph_inputs(model)
    assert [s.name for s in specs] == ["data_0"]
    assert specs[0].shape == [1, 3, 224, 224]
    assert not set(v.name for v in model.graph.inputs) & inits
    assert model.ir_version >= 4  # without initializer inputs the model is IR >= 4
    assert set(model.graph.initializers) == inits  # weights are kept


@pytest.mark.parametrize("path", modelzoo.LIGHT_MODELS, ids=lambda p: p.stem)
def test_every_light_model_loads_with_one_real_input(path):
    model = load_model(path)
    specs = graph_inputs(model)
    assert len(specs) == 1 and specs[0].shape[0] == 1 and len(specs[0].shape) == 4
    assert len(graph_outputs(model)) == 1


def test_pinning_an_initializer_input_is_refused():
    path = modelzoo.LIGHT_DIR / "light_squeezenet.onnx"
    with pytest.raises(DeployError, match="not a model input"):
        load_model(path, {"conv1_b_0": [64]})


# --------------------------------------------------------------------------- opset
def test_opset_version(cnn):
    assert opset_version(load_model(cnn)) == 17


def test_upgrade_is_a_no_op_when_new_enough(cnn):
    model = load_model(cnn)
    assert upgrade_opset(model, 13) is model
    assert upgrade_opset(model, 17) is model


def test_upgrade_light_model_opset9_to_13_runs_the_same():
    ort = pytest.importorskip("onnxruntime")
    from deploykit.ir import model_bytes

    path = modelzoo.LIGHT_DIR / "light_squeezenet.onnx"
    model = load_model(path)
    assert opset_version(model) == 9
    upgraded = upgrade_opset(model, 13)
    assert opset_version(upgraded) == 13
    onnx.checker.check_model(onnx.load_from_string(model_bytes(upgraded)))
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    ref = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(None, {"data_0": x})[0]
    got = ort.InferenceSession(model_bytes(upgraded), opts, providers=["CPUExecutionProvider"]).run(None, {"data_0": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_upgrade_to_an_impossible_opset_is_a_model_error(cnn):
    with pytest.raises(ModelError, match="cannot upgrade the model from opset 17 to 1000"):
        upgrade_opset(load_model(cnn), 1000)


# --------------------------------------------------------------------------- info.py specs
def test_specs_of_small_cnn(cnn):
    model = load_model(cnn)
    (i,), (o,) = graph_inputs(model), graph_outputs(model)
    assert i.to_json() == {"name": "image", "shape": [1, 3, 16, 16], "dtype": "float32", "layout": "NCHW",
                           "quantization": None}
    assert o.to_json() == {"name": "scores", "shape": [1, 10], "dtype": "float32", "layout": "ND",
                           "quantization": None}


def test_specs_of_integer_and_multiple_inputs(tmp_path):
    model = load_model(modelzoo.small_transformer(tmp_path / "t.onnx"))
    specs = {s.name: s for s in graph_inputs(model)}
    assert specs["tokens"].dtype == "int64" and specs["tokens"].shape == [1, 8]
    assert specs["features"].dtype == "float32" and specs["features"].layout == "ND"
    assert [s.name for s in graph_outputs(model)] == ["logits", "attention"]


@pytest.mark.parametrize("elem, name", [(TensorProto.FLOAT16, "float16"), (TensorProto.UINT8, "uint8"),
                                        (TensorProto.BOOL, "bool"), (TensorProto.INT32, "int32"),
                                        (TensorProto.DOUBLE, "float64")])
def test_spec_dtypes(tmp_path, elem, name):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", elem, [2, 3])],
        [helper.make_tensor_value_info("y", elem, [2, 3])],
    )
    model = load_model(_save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx"))
    assert graph_inputs(model)[0].dtype == name
    assert graph_outputs(model)[0].dtype == name


def test_tensor_spec_to_json_keeps_extra_only_when_set():
    assert "extra" not in TensorSpec("x", [1]).to_json()
    assert TensorSpec("x", [1], extra={"k": 1}).to_json()["extra"] == {"k": 1}


# --------------------------------------------------------------------------- hostile input
def _relu(x="x", y="y", shape=(1, 4), dtype=TensorProto.FLOAT, opset=17, x_dtype=None):
    graph = helper.make_graph([helper.make_node("Relu", [x], [y], name="r")], "g",
                              [helper.make_tensor_value_info(x, x_dtype or dtype, list(shape))],
                              [helper.make_tensor_value_info(y, dtype, list(shape))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("make, words", [
    (lambda: _relu(opset=99), "opset 99"),
    (lambda: _relu(x="a\x00b"), "contains a NUL character"),
    (lambda: _relu(dtype=TensorProto.STRING), "type string"),
    (lambda: _relu(shape=(1, 0)), "dimension of 0"),
    (lambda: _relu(shape=(1, -2)), "dimension of -2"),
    (lambda: _relu(shape=(1, 3, 50000, 50000)), "GiB per sample"),
])
def test_hostile_models_refused_with_reason(tmp_path, make, words):
    with pytest.raises(ModelError, match=words):
        load_model(_save(make(), tmp_path / "m.onnx"))


def test_non_utf8_name(tmp_path):
    data = _relu(x="xq").SerializeToString().replace(b"xq", b"x\xff")
    (tmp_path / "m.onnx").write_bytes(data)
    with pytest.raises(ModelError, match="not valid UTF-8"):
        load_model(tmp_path / "m.onnx")


def test_no_inputs(tmp_path):
    const = helper.make_node("Constant", [], ["y"], value=numpy_helper.from_array(np.ones((1, 4), np.float32)))
    graph = helper.make_graph([const], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ModelError, match="has no inputs"):
        load_model(_save(m, tmp_path / "m.onnx"))


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_not_a_regular_file(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "p.onnx"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    with pytest.raises(ModelError, match="named pipe|character device"):
        load_model(path)


def test_duplicate_node_names_made_unique(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="n"), helper.make_node("Relu", ["a"], ["y"], name="n"),
             helper.make_node("Identity", ["y"], ["z"], name="n_1")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])])
    proto = load_proto(_save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx"))
    names = [n.name for n in proto.graph.node]
    assert len(set(names)) == 3 and names[0] == "n"


def test_nonfinite_weights_found(tmp_path):
    from deploykit.ir.loader import nonfinite_weights

    w = np.ones((4, 3), np.float32)
    w[0, 0], w[1, 1], w[2, 2] = np.nan, np.inf, -np.inf
    assert nonfinite_weights(load_model(_save(_matmul_model(w=w), tmp_path / "m.onnx"))) == ["'W' (1 NaN, 2 Inf)"]
    assert nonfinite_weights(load_model(_save(_matmul_model(), tmp_path / "ok.onnx"))) == []


def test_infinite_clip_bounds_and_max_operands_are_not_broken_weights(tmp_path):
    """``Clip(x, 1e-10, +inf)`` (openWakeWord's mel front-end) and ``Max(-inf, x)`` (JAX) mean "no
    bound"; the warning "outputs are not finite, verification will fail" was a false alarm on them."""
    from deploykit.ir.loader import nonfinite_weights

    graph = helper.make_graph(
        [helper.make_node("Clip", ["x", "lo", "hi"], ["c"]), helper.make_node("Max", ["c", "neg"], ["m"]),
         helper.make_node("Add", ["m", "bad"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.float32(1e-10), "lo"), numpy_helper.from_array(np.float32(np.inf), "hi"),
         numpy_helper.from_array(np.float32(-np.inf), "neg"), numpy_helper.from_array(np.full(4, np.inf, np.float32), "bad")])
    model = load_model(_save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "m.onnx"))
    assert nonfinite_weights(model) == ["'bad' (0 NaN, 4 Inf)"]


@pytest.mark.parametrize("specs, words", [
    (["x:1,99999999999999999999"], "larger than"),
    (["x:1,2", "x:1,3"], "twice"),
])
def test_parse_input_shapes_hostile(specs, words):
    with pytest.raises(DeployError, match=words):
        parse_input_shapes(specs)
