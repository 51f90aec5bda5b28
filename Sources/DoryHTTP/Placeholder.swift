public enum DoryHTTPPlaceholder {}
