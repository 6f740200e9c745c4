"""``heldout site build OUT``: the registry as a static website (plain files, no server, no CDN).

:mod:`~heldout.site.build` gathers what a registry has released (datasets x versions, model cards, the
tier grid of the latest release, leaderboards, a lookup index) and :mod:`~heldout.site.pages` renders it
as accessible HTML. The identifier lookup runs in the browser on ``lookup-index.js``, which the build
writes; it works from ``file://`` and from any static host (GitHub Pages).
"""
