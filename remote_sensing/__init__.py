"""Satellite change detection: scene pairs in, change polygons (ChangeRegion) out.

Modules, in pipeline order: :mod:`~remote_sensing.io` (open scenes, band roles, scale/offset/
nodata, aligned windowed reads), :mod:`~remote_sensing.align` (the common grid),
:mod:`~remote_sensing.masks` (QA and spectral cloud/shadow masks),
:mod:`~remote_sensing.normalise` (PIF radiometric normalisation), :mod:`~remote_sensing.indices`,
:mod:`~remote_sensing.detect` (index differencing, CVA with Otsu/EM, iMAD),
:mod:`~remote_sensing.postprocess` (morphology, sieve, vectorise, equal-area measures),
:mod:`~remote_sensing.zones`, :mod:`~remote_sensing.windowed` (tile-aligned blocks, threads,
Dask), :mod:`~remote_sensing.pipeline` (one pair end to end), :mod:`~remote_sensing.revisits`
(possible -> confirmed), :mod:`~remote_sensing.output` (GeoJSON, quicklooks) and
:mod:`~remote_sensing.cli` (``farsight rs detect`` / ``rs watch``).
"""
