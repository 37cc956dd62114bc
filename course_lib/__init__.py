"""``course_lib``: the library behind the course *2D human pose estimation, from DeepPose to HRNet*.

One module per idea the chapters teach; open the one named after your chapter and read
it like an appendix:

=====================  ==========================================================
module                 what it holds (chapter)
=====================  ==========================================================
``keypoints``          keypoint sets, skeletons, flip pairs, OKS constants (00)
``data``               the synthetic data set, the COCO-format reader (00)
``viz``                drawing poses, sample grids, heatmap overlays (00-09)
``geometry``           box normalisation, crops, affine warps, flips (01, 06)
``heatmaps``           Gaussian targets and their decoders (02)
``models``             DeepPose, CPM, Hourglass, SimpleBaseline, HRNet, heads (01-09)
``ops``                ROIPool and ROIAlign from scratch (05)
``metrics``            PCP, PCK, PCKh, PDJ, OKS, COCO keypoint AP (08)
``training``           losses, the training loop, evaluation (01-09)
``widgets``            interactive demos for class (02, 05, 06-08)
``grading``            notebook release and autograding (instructors)
=====================  ==========================================================

Conventions used everywhere
---------------------------
* Keypoints are ``(N, K, 2)`` arrays of ``x, y`` in that order, in **pixels**; each
  function says whether they live in the image, the crop or the heatmap.
* Visibility is ``(N, K)`` with COCO's flags: 0 not labelled, 1 labelled but hidden,
  2 labelled and visible.  "Labelled" means ``v > 0``.
* Boxes are COCO's ``[x, y, w, h]`` (top-left corner, width, height) unless a function
  says ``center``/``scale``.
* Pixel ``(i, j)`` (row, column) has its centre at ``x = j, y = i``, so an image of width
  ``w`` spans ``x`` from -0.5 to ``w - 0.5`` (the convention of the official HRNet and
  SimpleBaseline code: heatmap pixel ``u`` maps to image ``x = u * stride``).
* Heatmaps are ``(N, K, H, W)``; images given to models are ``(N, 3, H, W)`` float tensors.
"""

__version__ = "1.0.0"
