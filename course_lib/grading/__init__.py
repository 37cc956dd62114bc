"""Notebook release and autograding for the course (nbgrader underneath, offline, no server).

Three commands::

    python -m course_lib.grading release [--source solutions] [--out notebooks] [--check]
        [--student-dir DIR]
    python -m course_lib.grading validate notebooks/NN_name.ipynb
    python -m course_lib.grading grade SUBMISSIONS/ [--out grades.csv] [--gradebook gradebook.db]
        [--source solutions] [--timeout-cell 120] [--timeout-notebook 900] [--memory-mb 4096]
        [--max-processes 256] [--skip-tag experiment] [--jobs 1] [--notebook NN_name] [--no-sandbox]

=====================  ===========================================================================
module                 what it does
=====================  ===========================================================================
``authoring``          reads a source notebook, infers nbgrader's metadata from the markers below
``release``            ``release``: ``solutions/`` -> ``notebooks/`` (stubs, hidden tests removed)
``edition``            the student edition (``release --student-dir``: no solutions, no hidden
                       tests) and the library a graded kernel gets (no code of its answers)
``validate``           ``validate``: runs a notebook's visible checks, prints a summary per exercise
``grade``              ``grade``: assembles every submission, has it judged, flags copies, writes
                       ``grades.csv``, feedback pages and the SQLite gradebook; the threat model
``judge``              grades one notebook from outside its kernel, exercise by exercise
``kernel``             one IPython kernel driven cell by cell with time limits and capped output
``sandbox``            bubblewrap around the kernel; one memory, process and CPU budget
``channel``            the plain data (JSON, no pickles) that crosses between judge and kernel
``remote``             the kernel's end of the channel: calls the student's function
``similarity``         copied answers: normalised syntax trees compared
``checks``             building blocks of the exercise checks (comparisons with helpful messages,
                       ``forbid_reference``)
``chNN_<name>``        one check module per chapter: ``check_<exercise>`` / ``hidden_<exercise>``,
                       and ``REFERENCES``
=====================  ===========================================================================


Writing a chapter: the source notebook
--------------------------------------
The source of chapter NN lives in ``solutions/NN_name.py``, a jupytext *percent* file
(cells start with ``# %%``; markdown cells with ``# %% [markdown]``), chosen because it
diffs and reviews like code.  ``.ipynb`` sources work too.  Never write nbgrader metadata by
hand: it is inferred from these markers.

An **exercise** is one function the student writes, then (optionally) visible self-checks,
then one graded cell::

    # %%
    def normalize_to_box(keypoints, box):
        \"\"\"N(y; b) = ((x - c_x) / w, (y - c_y) / h) ... (the student keeps this docstring)\"\"\"
        ### BEGIN SOLUTION
        ...the reference solution...
        ### END SOLUTION

    # %%
    checks.check_normalize_to_box(normalize_to_box)

    # %%
    # points: 3
    checks.check_normalize_to_box(normalize_to_box)
    ### BEGIN HIDDEN TESTS
    checks.hidden_normalize_to_box(normalize_to_box)
    ### END HIDDEN TESTS

The rules:

* **Answer cell**: a code cell with ``### BEGIN SOLUTION`` / ``### END SOLUTION``.  The
  region between the markers becomes ``# YOUR CODE HERE`` + ``raise NotImplementedError()``
  in the student notebook; keep the ``def`` line and the docstring outside it.  The exercise
  is named after the first ``def`` (or ``class``) at the start of a line, or an
  ``# exercise: NAME`` line; names are unique within a notebook.
* **Visible checks**: the code cells between the answer cell and the graded cell.  They are
  read-only for students and are what ``validate`` reports on.  They are not graded.
* **Graded cell**: the next code cell with a ``# points: N`` line (N > 0), usually with
  ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``; a graded cell without a hidden part
  is fine.  The hidden region is removed from the student notebook and put back when
  grading.  The exercise scores N if the cell runs without an error, else 0.  Exactly one
  graded cell per exercise, and it must come before the next answer cell.
* **Stretch exercises**: write ``# bonus: N`` instead of ``# points: N``.  The exercise is
  released and checked like any other, its cells get the tag ``stretch``, and its N points are
  bonus points: ``grades.csv``'s ``TOTAL`` row sums the regular exercises only and adds
  ``bonus: X of N`` to its message, so a notebook that skips every stretch exercise still gets
  full marks; ``validate`` lists them as optional.
* **Experiments**: tag heavy cells (training runs, sweeps) ``experiment``::

      # %% tags=["experiment"]

  Students run them; the grader and ``validate`` remove them.  So exercises (and their
  checks) must never depend on an experiment cell: anything an exercise needs (imports,
  data, a small model) is made in untagged cells, cheap enough to run 100 times.
* Cell ids come from exercise names (``NAME``, ``NAME-check``, ``NAME-tests``) and from a hash
  of the content for the other cells; release is byte-for-byte reproducible.
* Notebooks must not depend on the working folder: the grader runs each one in a scratch
  folder.  Read data through ``course_lib`` (``course_lib.data.DATA_ROOT``), not ``../data``.
* Cells keep only their ``tags`` and ``jupyter`` metadata; the kernel is set to
  ``pose-course`` ("Pose course (.venv)"), which ``make lab`` registers.

``make release`` (``python -m course_lib.grading release``) regenerates ``notebooks/``;
``release --check`` exits 1 when ``notebooks/`` differs from a fresh release (a test uses it).
Broken markers stop the release with the file and cell number.


Writing a chapter: the check module
-----------------------------------
Checks live in ``course_lib/grading/chNN_<name>.py`` (e.g. ``ch01_deeppose.py``), so the
notebook's cells stay one line.  The notebook imports the module once, in a setup cell near
the top: ``from course_lib.grading import ch01_deeppose as checks``.  For each exercise:

* ``check_<exercise>(fn)``: the visible check, on small cases with hand-worked answers (the
  lecture's worked example where there is one); it ends with :func:`checks.report_passed`.
* ``hidden_<exercise>(fn)``: the hidden check: more and random cases compared with the
  reference implementation in ``course_lib``, edge cases, and
  ``fn = forbid_reference(fn, *REFERENCES["<exercise>"])`` first, so a student's function
  that only calls the course's own implementation fails.
* ``REFERENCES = {"<exercise>": (function, ...)}`` at the end of the module: the course's own
  answers to each exercise (reference functions and methods, and the helpers they are built
  from).  Besides ``forbid_reference``, the grader uses it to leave that code out of the kernel
  that runs the student's notebook, until the exercise has been judged.

A check receives the student's function and may only call it (through ``call_student``),
never look inside it: while a notebook is graded, ``fn`` is a proxy that sends the arguments
to the student's kernel as data and returns the result as data.  Arguments may be numbers,
strings, lists, tuples, dicts, NumPy arrays, tensors, ``nn.Module`` objects (sent as their
class and weights) and functions defined at the top of a ``course_lib`` module (sent by
name).  Results come back as the same plain data; a module that the student's code makes
stays in the kernel, and the check examines it with :func:`~checks.describe_module` and
:func:`~checks.call_method`; a check that needs gradients through the student's function uses
:func:`~checks.gradients_through`.  A graded cell may use the names ``checks`` and its
exercise's name only: the judge runs it outside the kernel, where nothing else exists.

Both are built from :mod:`course_lib.grading.checks`: :func:`~checks.call_student` (stubs,
crashes and inputs changed in place become clear messages), :func:`~checks.check_close`
(expected vs got, with hints: swapped x/y, off by one, wrong sign, a constant factor, and the
exercise's own ``mistakes={hint: wrong_answer}``, e.g. the answer computed with
:func:`~checks.all_visible` for "ignores visibility"), :func:`~checks.check_shape`,
:func:`~checks.check_dtype`, :func:`~checks.check_type`.  A check returns ``None`` and raises
:class:`~checks.CheckFailed` (an ``AssertionError``) with a message the student can act on.

Every check is unit-tested in ``tests/test_grading_chNN.py``: the reference implementation
passes, and typical wrong implementations (off by one, swapped x/y, ignoring visibility,
wrong dtype, calling the reference) fail with the right hint.

The hidden tests are hidden from the notebook, not secret: the course is open source and the
check modules are readable.  They keep students from fitting their code to the tests they see.

A chapter's tests also grade its solved notebook (the release with every answer filled in),
which proves the exercises do not depend on experiment cells; it costs one kernel run::

    from course_lib.grading.authoring import notebook_text, read_source, solved_version
    from course_lib.grading.grade import SourceNotebook, grade_notebook

    source = "solutions/01_deeppose.py"
    path.write_text(notebook_text(solved_version(read_source(source))))
    result = grade_notebook(path, SourceNotebook.load(source), student="solved")
    assert result.points == result.max_points and not result.flagged


Grading
-------
``python -m course_lib.grading grade SUBMISSIONS/`` takes one folder per student holding
notebooks named like the released ones (``SUBMISSIONS/ada/01_deeppose.ipynb``).  A submission
may be malicious or merely broken; what grading guarantees whatever it does (the threat model,
in full in :mod:`~course_lib.grading.grade`): it earns no points its functions do not earn; it
cannot change another student's grade, the gradebook, the CSV, or any file outside its own
scratch folder; it cannot read ``solutions/``, the hidden tests, or the course's own answers to
its notebook's exercises; it has no network and does not see the grader's environment; no
process of it survives its grading; all its processes together stay within ``--memory-mb``;
and an exercise that passed keeps its points whatever happens later in the notebook.

How: every notebook runs in a fresh IPython kernel inside a bubblewrap sandbox
(:mod:`~course_lib.grading.sandbox`) whose library copy has no hidden tests and none of the
notebook's answers (:mod:`~course_lib.grading.edition`).  The judge
(:mod:`~course_lib.grading.judge`) runs the student's cells there and, at each graded cell, runs
the source's checks in its own process against the student's function, reached through a
channel that carries plain data only (:mod:`~course_lib.grading.channel`).  Graded cells and
points always come from the source (an edited graded cell is replaced, a deleted one put
back; both are noted and the notebook is flagged).  Each exercise's result is written as soon
as it is known; a notebook that loops, exits, crashes its kernel, floods the output, eats
memory or is not JSON scores zero for what did not pass, and the batch goes on.  Answers that
look copied (the course's solution, its reference, or another student's, compared on
normalised syntax trees: :mod:`~course_lib.grading.similarity`) are flagged in the CSV, not
zeroed.  Results go into nbgrader's SQLite gradebook (grading again replaces that student's
scores for that notebook and keeps everything else), ``grades.csv`` (every student in the
gradebook; columns in :mod:`~course_lib.grading.grade`) and
``feedback/<student>/<notebook>.html`` next to the CSV.

Without bubblewrap, ``grade`` refuses to start unless given ``--no-sandbox``: the judge still
works from outside the kernel and the answers' code is still left out, but student code runs as
you, with your files and your network (see the README).

Students never need the sandbox: ``validate`` runs their own notebook in a plain kernel.  For a
graded class, give them the student edition (``release --student-dir DIR``), which holds no
solutions and no hidden tests.
"""
