"""Reading what a stranger may have written: cards, params, source files, URLs.

heldout's threat model (docs: SECURITY.md) trusts a registry's maintainers and
nothing that arrives by pull request. Every file, card, URL and parameter from
a pull request goes through this package before heldout acts on it:

* :mod:`~heldout.untrusted.yaml_input`: YAML with a size cap, an alias budget and no duplicate keys;
* :mod:`~heldout.untrusted.paths`: a path named by a card resolves inside the registry, before anything
  outside it is touched (no existence or hash oracle), and is a regular file of bounded size;
* :mod:`~heldout.untrusted.hdf5`: an h5ad's HDF5 layout is checked before a byte of data is read
  (no external links, external storage or virtual datasets; declared shapes and nnz within limits);
* :mod:`~heldout.untrusted.remote`: a URL is checked for shape, fetched only by a maintainer's command and
  only from an allow-listed host, with a size cap, into a cache keyed by the verified content hash;
* :mod:`~heldout.untrusted.limits`: the size and time limits, and a deadline for a unit of work.
"""
