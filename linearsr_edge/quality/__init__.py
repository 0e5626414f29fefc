"""How close a bundle is to the reference: metrics and check rows (`parity`), the golden set every bundle
carries (`golden`) and its verification on the machine that loads it (`verify`)."""
