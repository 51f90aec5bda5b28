// A test-only doryd processor that misbehaves on demand (see FixtureProcessor.swift).
FixtureMain.start()
