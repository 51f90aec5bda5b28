// Wiring only: one call into a type of this target, so no handler is created in main-actor top-level code.
DorydMain.start()
