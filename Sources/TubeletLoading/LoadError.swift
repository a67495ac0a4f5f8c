/// Every read error: one line naming the file, the byte offset where known, and what was expected.
public struct LoadError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let offset: Int?
    public let message: String

    public init(file: String, offset: Int? = nil, message: String) {
        self.file = file
        self.offset = offset
        self.message = message
    }

    public var description: String {
        if let offset { return "\(file): at byte \(offset): \(message)" }
        return "\(file): \(message)"
    }
}
