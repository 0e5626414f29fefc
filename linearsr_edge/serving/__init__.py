"""Serving bundles behind NVIDIA Triton Inference Server: a model repository on Triton's Python backend
(`linearsr_edge.serving.triton.write_repository`) and a local server for it (`TritonServer`)."""
