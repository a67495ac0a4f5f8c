/// The release version of tubelet and tubeletd (`--version`); Scripts/package-deb names the package after it.
public let tubeletVersion = "0.6.0"
