"""Tag embeddings cached at export: the model's vocabulary, a precomputed file, or a local text encoder."""

from __future__ import annotations

import numpy as np
import pytest

from linearsr_edge.build import ExportOptions, resolve_tags
from linearsr_edge.errors import ConfigError
from linearsr_edge.reference import load_model_folder
from linearsr_edge.tags import NULL_TAG
from tests.helpers import tiny_model_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return load_model_folder(tiny_model_folder(tmp_path_factory.mktemp("m")))


def _opts(**kw):
    return ExportOptions(target="onnx-fp32", out=kw.pop("out", "unused"), **kw)


def test_model_vocabulary_and_unknown_tag(folder):
    assert resolve_tags(folder, _opts()).names == ("portrait", "animal", NULL_TAG)
    with pytest.raises(ConfigError, match="unknown tag 'animl'; did you mean 'animal'"):
        resolve_tags(folder, _opts(tags=("animl",)))


def test_cond_file(folder, tmp_path):
    path = tmp_path / "cond.npz"
    np.savez(path, dusk=np.ones(8, np.float32), rain=np.full(8, 2.0, np.float32))
    vocab = resolve_tags(folder, _opts(cond_file=path, tags=("rain", "dusk")))
    assert vocab.names == ("rain", "dusk", NULL_TAG)
    assert np.array_equal(vocab.encode(["dusk"]), np.stack([np.ones(8), np.zeros(8)]).astype(np.float32))
    with pytest.raises(ConfigError, match="no embedding for tags \\['fog'\\]"):
        resolve_tags(folder, _opts(cond_file=path, tags=("fog",)))
    np.savez(tmp_path / "wide.npz", dusk=np.ones(9, np.float32))
    with pytest.raises(ConfigError, match="not \\[8\\]"):
        resolve_tags(folder, _opts(cond_file=tmp_path / "wide.npz"))
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(ConfigError, match="cannot read cond file"):
        resolve_tags(folder, _opts(cond_file=tmp_path / "junk.npz"))


def _tiny_bert(path, hidden):
    transformers = pytest.importorskip("transformers", reason="requires transformers (the text extra)")
    import torch

    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "rain", "dusk", "fog"]))
    transformers.BertTokenizer(str(path / "vocab.txt")).save_pretrained(str(path))
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=8,
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
    )
    transformers.BertModel(cfg).save_pretrained(str(path))
    return path


def test_text_encoder(folder, tmp_path):
    enc = _tiny_bert(tmp_path / "bert", hidden=8)
    vocab = resolve_tags(folder, _opts(text_encoder=enc, tags=("rain", "fog")))
    assert vocab.names == ("rain", "fog", NULL_TAG) and vocab.embeddings.shape == (3, 8)
    assert not np.allclose(vocab.embeddings[0], vocab.embeddings[1])
    again = resolve_tags(folder, _opts(text_encoder=enc, tags=("rain",)))
    assert np.allclose(again.embeddings[0], vocab.embeddings[0], atol=1e-6)  # deterministic, per tag
    wrong = _tiny_bert(tmp_path / "bert6", hidden=6)
    with pytest.raises(ConfigError, match="6-wide embeddings; the model's cond_dim is 8"):
        resolve_tags(folder, _opts(text_encoder=wrong, tags=("rain",)))
    with pytest.raises(ConfigError, match="not both"):
        resolve_tags(folder, _opts(text_encoder=enc, cond_file=tmp_path / "x.npz"))
