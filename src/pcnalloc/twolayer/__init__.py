"""The access layer joined to the rest of the project (DESIGN §11).

* the project's method on the access layer's epoch-level mode decision: a per-device DQN
  teacher on ``pcnalloc/Access-v0`` (:mod:`.teacher`; an MLP on each device's row, or a
  GATv2 network over the device–subchannel graph, :mod:`.graph` and :mod:`.gnn`), its
  trajectory library
  (:mod:`.library`, the ordinary :mod:`pcnalloc.library` format), a student distilled with
  :func:`pcnalloc.distill.train_student` (:mod:`.train`), the guarded policies
  ``teacher@``/``student@``/``learned@`` (:mod:`.learned`) and their paired comparison with
  the heuristics (:mod:`.compare`);
* the coupling of delivered access traffic to backbone requests (:mod:`.coupling`).

It sits above both the access layer and the distillation stage, which the access layer may
not import; nothing here is imported by ``import pcnalloc``.
"""
