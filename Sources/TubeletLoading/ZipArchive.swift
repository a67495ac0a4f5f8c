/// A minimal reader for the zip archives torch.save writes: stored (uncompressed) entries,
/// zip64 where needed. Every offset and size read from the file is checked against
/// the file length before use, so a damaged file gives a `LoadError`, never a crash.
struct ZipArchive {
    struct Entry {
        let name: String
        /// Where the entry's bytes start (after the local header) and how many there are.
        let dataOffset: Int
        let size: Int
    }

    let path: String
    let region: ByteRegion
    /// Entries in central-directory order.
    let entries: [Entry]

    private static let endOfCentralDirectorySignature: UInt32 = 0x0605_4B50
    private static let zip64LocatorSignature: UInt32 = 0x0706_4B50
    private static let zip64EndSignature: UInt32 = 0x0606_4B50
    private static let centralHeaderSignature: UInt32 = 0x0201_4B50
    private static let localHeaderSignature: UInt32 = 0x0403_4B50

    init(path: String, region: ByteRegion) throws {
        self.path = path
        self.region = region
        let bytes = region.buffer
        let fileSize = bytes.count
        func fail(_ offset: Int?, _ message: String) -> LoadError { LoadError(file: path, offset: offset, message: message) }

        // The end-of-central-directory record is 22 bytes plus a comment of up to 65535 bytes.
        let eocd = Self.findEndOfCentralDirectory(bytes)
        guard let eocd else {
            throw fail(nil, "no zip end-of-central-directory record: the file is truncated or is not a torch.save zip archive")
        }
        var entryCount = Int(bytes.u16(eocd + 10))
        var directorySize = Int(bytes.u32(eocd + 12))
        var directoryOffset = Int(bytes.u32(eocd + 16))

        // Zip64: a locator sits right before the classic record and points at the zip64 record.
        if eocd >= 20, bytes.u32(eocd - 20) == Self.zip64LocatorSignature {
            let recordOffset64 = bytes.u64(eocd - 20 + 8)
            guard fileSize >= 56, recordOffset64 <= UInt64(fileSize - 56) else {
                throw fail(eocd - 20, "zip64 end-of-central-directory offset \(recordOffset64) is outside the file (\(fileSize) bytes)")
            }
            let record = Int(recordOffset64)
            guard bytes.u32(record) == Self.zip64EndSignature else {
                throw fail(record, "expected a zip64 end-of-central-directory record")
            }
            let count64 = bytes.u64(record + 32), size64 = bytes.u64(record + 40), offset64 = bytes.u64(record + 48)
            guard count64 <= UInt64(fileSize), size64 <= UInt64(fileSize), offset64 <= UInt64(fileSize) else {
                throw fail(record, "zip64 central directory (\(count64) entries, \(size64) bytes at \(offset64)) does not fit in the file (\(fileSize) bytes)")
            }
            entryCount = Int(count64)
            directorySize = Int(size64)
            directoryOffset = Int(offset64)
        }
        guard directoryOffset <= fileSize, directorySize <= fileSize - directoryOffset else {
            throw fail(eocd, "central directory (\(directorySize) bytes at \(directoryOffset)) runs past the end of the file (\(fileSize) bytes)")
        }
        // Each central-directory header is at least 46 bytes; this bounds the allocation below.
        guard entryCount <= directorySize / 46 else {
            throw fail(eocd, "zip declares \(entryCount) entries but its central directory is only \(directorySize) bytes")
        }

        var entries: [Entry] = []
        entries.reserveCapacity(entryCount)
        var cursor = directoryOffset
        let directoryEnd = directoryOffset + directorySize
        for index in 0..<entryCount {
            guard directoryEnd - cursor >= 46, bytes.u32(cursor) == Self.centralHeaderSignature else {
                throw fail(cursor, "expected central directory header \(index + 1) of \(entryCount)")
            }
            let flags = bytes.u16(cursor + 8)
            let method = bytes.u16(cursor + 10)
            var compressedSize = UInt64(bytes.u32(cursor + 20))
            var uncompressedSize = UInt64(bytes.u32(cursor + 24))
            let nameLength = Int(bytes.u16(cursor + 28))
            let extraLength = Int(bytes.u16(cursor + 30))
            let commentLength = Int(bytes.u16(cursor + 32))
            var localOffset = UInt64(bytes.u32(cursor + 42))
            let recordLength = 46 + nameLength + extraLength + commentLength
            guard directoryEnd - cursor >= recordLength else {
                throw fail(cursor, "central directory header \(index + 1) (\(recordLength) bytes) runs past the directory end")
            }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(cursor + 46)..<(cursor + 46 + nameLength)]), as: UTF8.self)

            // Zip64 extra field: 64-bit values for exactly those fields that hold 0xFFFFFFFF, in this order.
            var extra = cursor + 46 + nameLength
            let extraEnd = extra + extraLength
            while extraEnd - extra >= 4 {
                let id = bytes.u16(extra), length = Int(bytes.u16(extra + 2))
                guard extraEnd - extra - 4 >= length else {
                    throw fail(extra, "extra field of '\(name)' runs past its header")
                }
                if id == 0x0001 {
                    var field = extra + 4
                    let fieldEnd = field + length
                    func next64() throws -> UInt64 {
                        guard fieldEnd - field >= 8 else { throw fail(field, "zip64 extra field of '\(name)' is too short") }
                        defer { field += 8 }
                        return bytes.u64(field)
                    }
                    if uncompressedSize == 0xFFFF_FFFF { uncompressedSize = try next64() }
                    if compressedSize == 0xFFFF_FFFF { compressedSize = try next64() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next64() }
                }
                extra += 4 + length
            }

            guard flags & 1 == 0 else { throw fail(cursor, "zip entry '\(name)' is encrypted; expected a plain torch.save archive") }
            guard method == 0 else {
                let methodName = method == 8 ? " (deflate)" : ""
                throw fail(cursor, "zip entry '\(name)' uses compression method \(method)\(methodName); only stored (method 0) entries are supported, as torch.save writes them")
            }
            guard compressedSize == uncompressedSize else {
                throw fail(cursor, "stored zip entry '\(name)' has compressed size \(compressedSize) != uncompressed size \(uncompressedSize)")
            }

            // The local header repeats the name and has its own extra field (torch pads it to align data to 64 bytes).
            guard fileSize >= 30, localOffset <= UInt64(fileSize - 30) else {
                throw fail(cursor, "zip entry '\(name)': local header offset \(localOffset) is outside the file (\(fileSize) bytes)")
            }
            let local = Int(localOffset)
            guard bytes.u32(local) == Self.localHeaderSignature else {
                throw fail(local, "expected the local header of zip entry '\(name)'")
            }
            let dataOffset = local + 30 + Int(bytes.u16(local + 26)) + Int(bytes.u16(local + 28))
            guard dataOffset <= fileSize, compressedSize <= UInt64(fileSize - dataOffset) else {
                throw fail(local, "truncated zip entry '\(name)' (expected \(compressedSize) bytes at \(dataOffset), file ends at \(fileSize))")
            }
            entries.append(Entry(name: name, dataOffset: dataOffset, size: Int(compressedSize)))
            cursor += recordLength
        }
        self.entries = entries
    }

    private static func findEndOfCentralDirectory(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= 22 else { return nil }
        let lowest = max(0, bytes.count - 22 - 65535)
        var candidate = bytes.count - 22
        while candidate >= lowest {
            // A real record's comment length reaches exactly to the end of the file.
            if bytes.u32(candidate) == endOfCentralDirectorySignature,
               candidate + 22 + Int(bytes.u16(candidate + 20)) == bytes.count {
                return candidate
            }
            candidate -= 1
        }
        return nil
    }

    func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    func bytes(of entry: Entry) -> ByteRegion { region.slice(entry.dataOffset, entry.size) }
}
