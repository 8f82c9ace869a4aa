"""Build inputs of cronium's local images (Dockerfiles, build scripts, pinned wheels, job helpers).

This package holds data only; `cronium.core.host.images` builds the images from it. The files are
package data, so a normal (non-editable) install can build the images without the git checkout.
"""
