import DoryKit
print(DoryKitVersion.version)
