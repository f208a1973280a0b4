//! The platform kind has one spelling per layer (store record, control-plane port, envelope
//! payload); these map between them without going through strings.

use fleet_cloud::PlatformKind as Cloud;
use fleet_envelope::payload::Platform as Wire;
use fleet_store::records::PlatformKind as Stored;

/// A record's platform as the ports name it.
pub fn to_cloud(p: Stored) -> Cloud {
    match p {
        Stored::Aks => Cloud::Aks,
        Stored::ContainerApps => Cloud::ContainerApps,
        Stored::Functions => Cloud::Functions,
        Stored::AppService => Cloud::AppService,
    }
}

/// A port's platform as records name it.
pub fn to_stored(p: Cloud) -> Stored {
    match p {
        Cloud::Aks => Stored::Aks,
        Cloud::ContainerApps => Stored::ContainerApps,
        Cloud::Functions => Stored::Functions,
        Cloud::AppService => Stored::AppService,
    }
}

/// A port's platform as events name it.
pub fn to_wire(p: Cloud) -> Wire {
    match p {
        Cloud::Aks => Wire::Aks,
        Cloud::ContainerApps => Wire::Containerapps,
        Cloud::Functions => Wire::Functions,
        Cloud::AppService => Wire::Appservice,
    }
}

/// An event's platform as the ports name it.
pub fn from_wire(p: Wire) -> Cloud {
    match p {
        Wire::Aks => Cloud::Aks,
        Wire::Containerapps => Cloud::ContainerApps,
        Wire::Functions => Cloud::Functions,
        Wire::Appservice => Cloud::AppService,
    }
}
