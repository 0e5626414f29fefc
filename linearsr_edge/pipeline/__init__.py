"""The host side every backend shares: sessions and the backend contract (`session`), the runtime that runs a
bundle's components (`runtime`), the sampler loop (`process`), sizes, tiles and memory (`sizes`, `tiling`,
`memory`), which sessions stay open (`residency`), frame streams (`stream`) and image I/O (`imaging`).
No module here names a hardware family."""
