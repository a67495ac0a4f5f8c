import Foundation

/// Replaces the user-info part of a URL (`rtsp://user:pass@host/...`) with `***`, and masks
/// query parameters that commonly carry secrets. Use it everywhere a URL is logged or published.
public func redactCredentials(_ url: String) -> String {
    var result = url
    if let schemeEnd = result.range(of: "://") {
        let afterScheme = result[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? afterScheme.endIndex
        let authority = afterScheme[..<authorityEnd]
        // The last '@' ends the user info: passwords may contain '@' unescaped.
        if let at = authority.lastIndex(of: "@") {
            result.replaceSubrange(schemeEnd.upperBound..<at, with: "***")
        }
    }
    return redactSecretQueryParameters(result)
}

private let secretParameterNames: Set<String> = [
    "password", "passwd", "pwd", "pass", "user", "username", "token", "access_token", "auth", "key", "apikey", "api_key", "secret",
]

private func redactSecretQueryParameters(_ url: String) -> String {
    guard let question = url.firstIndex(of: "?") else { return url }
    let fragmentStart = url[question...].firstIndex(of: "#") ?? url.endIndex
    let query = url[url.index(after: question)..<fragmentStart]
    let redacted = query.split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
        guard let eq = pair.firstIndex(of: "=") else { return String(pair) }
        let name = pair[..<eq].lowercased()
        return secretParameterNames.contains(name) ? "\(pair[..<eq])=***" : String(pair)
    }.joined(separator: "&")
    return String(url[...question]) + redacted + String(url[fragmentStart...])
}
