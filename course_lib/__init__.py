"""``course_lib``: the library behind the course *2D human pose estimation, from DeepPose to HRNet*.

One module per idea the chapters teach; open the one named after your chapter and read
it like an appendix:

===========================  =========================================================
module                       what it holds (chapter)
===========================  =========================================================
``keypoints``                keypoint sets, skeletons, flip pairs, OKS constants (00)
``synthetic``                the synthetic people: renderer and data set writer (00)
``data``                     the default data, the COCO-format reader, the astronaut (00)
``viz``                      drawing poses, sample grids, heatmap overlays, block diagrams of
                             the models, the failure gallery (00-09)
``failures``                 each joint of a prediction sorted into a failure kind (03-09)
``geometry``                 box normalisation, crops, affine warps, flips (01, 06)
``cascade``                  DeepPose's cascade: simulated predictions, patches, refinement (01)
``heatmaps``                 Gaussian targets, decoders, the heatmap codec, the flip test,
                             G-RMI targets (02, 06, 09)
``receptive_field``          receptive fields, computed and measured (03)
``models``                   DeepPose, CPM, Hourglass, ResNet, SimpleBaseline, HRNet, heads,
                             the person detector; build(), measure_complexity(), latency (01-09)
``ops``                      ROIPool and ROIAlign from scratch (05)
``torchvision_reference``    torchvision.ops run on the same input, when available (05)
``roi_keypoints``            a Mask R-CNN-style keypoint model on ROI features (05)
``top_down``                 the top-down data set: person crops with heatmap targets (06)
``losses``                   heatmap MSE, OHKM, regression, intermediate supervision, ... (01-09)
``training``                 one training step and the loop around it, checkpoints (01-09)
``runtime``                  the fast profile, devices, mixed precision, seeding (01-09)
``schedules``                the order of the items and the learning rate of a run (01-09)
``prediction``               a model's keypoints over top-down data, in image pixels (01-09)
``scoring``                  every metric of the course for those predictions (01-09)
``zoo``                      trained tiny models, cached after their first training (06-09)
``metrics``                  PCP, PCK, PCKh, PDJ, OKS, COCO keypoint AP, OKS-NMS, Ronchi &
                             Perona's error classes (08, 09)
``multi_person``             the top-down multi-person pipeline, detection to COCO AP (09)
``grouping``                 bottom-up grouping of joints by associative-embedding tags, and
                             the associative-embedding loss (09)
``weights``                  weights from files: the course's checkpoints, the papers' releases,
                             MMPose's, ImageNet backbones; all read with weights_only (10)
``inference``                pose estimation on photographs as the papers' code runs it (10)
``widgets``                  interactive demos for class (02, 05, 06-08, 10)
``report``                   experiment tables and prose computed from the run (every chapter)
``grading``                  notebook release and autograding (instructors)
``book``, ``train``,         command lines: run every chapter (``make book``), train a model,
``evaluate``, ``predict``,   evaluate COCO files, predict on photos and videos, score COCO val
``evaluate_coco``,           as the papers did, export to ONNX, draw the README's gallery
``export``, ``figures``      (``make figures``)
``validation``               the input checks used at every public boundary
===========================  =========================================================

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
* Sizes and coordinates follow one rule.  An array or tensor **size** is ``(H, W)``, in the
  order of its shape (``input_size``, ``heatmap_size``, ``output_size``, an image's size).
  Anything **geometric** is ``x`` before ``y``: a point ``(x, y)``, a box ``[x, y, w, h]``, a
  crop's scale ``(w, h)``, a stride ``(s_x, s_y)``.  Where the two meet and a reader could
  guess wrong, the parameter says which (``output_hw``, ``scale_wh``, ``input_hw``).
* Heatmaps are ``(N, K, H, W)``; images given to models are ``(N, 3, H, W)`` float tensors.
"""

__version__ = "1.0.0"
