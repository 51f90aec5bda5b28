/// The run-mode workload (`doryd run -- CMD`, spec/supervise.md): being built.
public enum DorySupervisorModule {}
