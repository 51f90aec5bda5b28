import DoryKit
