/// The event workload (`doryd events`, spec/event-pipeline.md): being built.
public enum DoryEventsModule {}
